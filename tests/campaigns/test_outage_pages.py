"""The marketer's outage pages in words: dashboard, drill, window report and its downloads,
engagement; as a marketer and a viewer of the workspace, and as a stranger to it."""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.engagement import campaign_engagement
from campaigns.lifecycle import campaign_cancel
from campaigns.models import (
    AttemptKind,
    Campaign,
    CampaignStatus,
    FailbackChoice,
    PostStatus,
    PublishAttempt,
    Reroute,
    RerouteStatus,
    SocialPost,
)
from campaigns.reports import sends_per_minute_svg, window_report
from campaigns.reroute import campaign_network_down, reroute_plan_next_slice, reroute_window_closed
from contacts.consent import Evidence, consent_revoke, suppression_add
from contacts.models import Channel, ConsentSource
from continuity.admin_access import SESSION_KEY
from continuity.models import Role, Workspace
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from outages.models import OutageWindow
from outages.windows import outage_resolve
from tests.campaigns.reroute_factories import make_campaign, network_down
from tests.delivery.test_materialize import contact_with
from tests.workspaces import make_member, make_workspace, workspace_for_tests

pytestmark = pytest.mark.django_db

NO_SEND = {"send": lambda *a, **k: None}


def member_client(role: str = Role.MARKETER, workspace: Workspace | None = None) -> Client:
    workspace = workspace or workspace_for_tests()
    client = Client()
    client.force_login(make_member(workspace=workspace, role=role))
    session = client.session
    session[SESSION_KEY] = workspace.pk
    session.save()
    return client


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def no_code_words(html: str) -> None:
    """What a marketer must never read: Python dicts, engine codes, Decimal reprs."""
    assert "{'" not in html and "&#x27;:" not in html
    for code in ("no_consent", "hold_then_reroute", "delayed_quiet_hours", "sms_only"):
        assert code not in html, code


def rerouted(settings: Any, **campaign: Any) -> Reroute:
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    window = network_down()
    reroute = campaign_network_down(
        campaign_id=make_campaign(**campaign).pk,
        network="instagram",
        window_id=window.pk,
        **NO_SEND,
    )
    assert reroute is not None
    while reroute_plan_next_slice(reroute_id=reroute.pk):
        pass
    reroute.refresh_from_db()
    return reroute


# --- dashboard ------------------------------------------------------------------------------------


def test_the_dashboard_lists_campaigns_due_soon_on_a_network_that_is_down() -> None:
    network_down("instagram")
    soon = make_campaign(due_in_minutes=8, name="Winter sale")
    make_campaign(due_in_minutes=60 * 30, name="Next week")  # beyond 24 hours
    make_campaign(networks=("facebook",), due_in_minutes=8, name="On Facebook")
    html = page(member_client(), "/admin/campaigns/reroute/dashboard/")
    at_risk = html.split("At risk in the next 24 hours")[1].split("</table>")[0]
    assert f'href="/admin/campaigns/campaign/{soon.pk}/change/"' in at_risk
    assert "Winter sale" in at_risk
    assert "Next week" not in at_risk and "On Facebook" not in at_risk
    assert "down (outage open)" in at_risk


def test_the_dashboard_calls_a_network_failing_from_our_own_publish_attempts() -> None:
    campaign = make_campaign(networks=("x",), due_in_minutes=30)
    now = timezone.now()
    for kind in (AttemptKind.TRANSIENT, AttemptKind.TRANSIENT, AttemptKind.OK):
        PublishAttempt.objects.create(
            workspace=campaign.workspace, at=now - timedelta(seconds=20), network="x", kind=kind
        )
    html = page(member_client(), "/admin/campaigns/reroute/dashboard/")
    assert "failing: 2 of the last 3 publish attempts failed" in html
    assert campaign.name in html.split("At risk in the next 24 hours")[1].split("</table>")[0]


def test_a_held_campaign_shows_until_when_and_when_it_reroutes(settings: Any) -> None:
    reroute = rerouted(settings, outage_policy="hold_then_reroute", hold_then_reroute_minutes=15)
    assert reroute.status == RerouteStatus.HOLDING and reroute.send_after is not None
    html = page(member_client(Role.VIEWER), "/admin/campaigns/reroute/dashboard/")
    assert "Held until the network is back, or 15 minutes pass." in html
    assert f"Reroutes at {timezone.localtime(reroute.send_after):%Y-%m-%d %H:%M}" in html
    assert "Holding -" not in html and "-</td>" not in html


def test_a_reroute_with_nothing_left_to_send_reads_as_done_not_sending(settings: Any) -> None:
    for _ in range(2):
        contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",))
    assert reroute.status == RerouteStatus.SENDING
    client = member_client()
    assert "Done: everything planned has left" not in page(
        client, "/admin/campaigns/reroute/dashboard/"
    )
    Delivery.objects.update(status=S.DELIVERED, sent_at=timezone.now())
    html = page(client, "/admin/campaigns/reroute/dashboard/")
    assert "Done: everything planned has left" in html
    assert f'href="/admin/campaigns/campaign/{reroute.campaign_id}/change/"' in html


# --- drill ----------------------------------------------------------------------------------------


def test_the_drill_speaks_in_tables_money_and_policies(settings: Any, drill_worker: Any) -> None:
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    settings.REROUTE_SMS_SEGMENT_COST = 0.05
    settings.REROUTE_SMS_CURRENCY = "EUR"
    for _ in range(3):
        contact_with(Channel.SMS, email=False, push=False)
    contact_with()  # no consent anywhere
    make_campaign(fallback=("sms",), due_in_minutes=30, name="Reroutes")
    make_campaign(
        fallback=("sms",), due_in_minutes=30, name="Holds", outage_policy="hold_then_reroute"
    )
    html = page(member_client(), "/admin/campaigns/reroute/drill/?network=instagram")
    no_code_words(html)
    now_row = html.split("Would send now (campaigns that reroute)")[1].split("</tr>")[0]
    cells = re.findall(r"<td>([^<]*)</td>", now_row)
    # Email, SMS, Web push, WhatsApp, segments, cost: only the rerouting campaign's 3 SMS.
    assert cells == ["0", "3", "0", "0", "3", "0.15 EUR"]
    assert "Would hold the post for 15 minutes" in html
    assert "No consent on any fallback channel" in html
    assert "0.05 EUR per segment" in html


def test_a_skip_campaign_is_drilled_as_a_skip(drill_worker: Any) -> None:
    make_campaign(due_in_minutes=30, outage_policy="skip", name="Skipper")
    html = page(member_client(), "/admin/campaigns/reroute/drill/?network=instagram")
    assert "Skipped: the post is not published and nothing is sent." in html
    assert "Skip (record it, send nothing)" in html


# --- report ---------------------------------------------------------------------------------------


def test_the_report_times_sends_from_the_opening_and_from_the_due_time(settings: Any) -> None:
    contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",))
    sent_at = timezone.now()
    OutageWindow.objects.filter(pk=reroute.window_id).update(
        opened_at=sent_at - timedelta(seconds=160)
    )
    reroute.campaign.scheduled_at = sent_at - timedelta(seconds=5.2)
    reroute.campaign.save()
    Delivery.objects.update(status=S.SENT, sent_at=sent_at)
    report = window_report(window_id=reroute.window_id, workspace=workspace_for_tests())
    assert report.first_send_s == pytest.approx(160, abs=0.2)
    assert report.campaigns[0].first_after_opening_s == pytest.approx(160, abs=0.2)
    assert report.campaigns[0].first_after_due_s == pytest.approx(5.2, abs=0.2)
    html = page(member_client(Role.VIEWER), f"/admin/campaigns/reroute/report/{reroute.window_id}/")
    assert "160.0 s after the outage opened" in html
    no_code_words(html)


def test_the_report_counts_only_its_own_windows_sends(settings: Any) -> None:
    """A campaign on two networks: the second window's reroute plans nothing new (the
    deliveries exist once per message), so its report counts none of the first's."""
    contact_with(Channel.EMAIL, push=False)
    first = rerouted(settings, networks=("instagram", "facebook"), fallback=("email",))
    assert Delivery.objects.count() == 1
    later = campaign_network_down(
        campaign_id=first.campaign_id,
        network="facebook",
        window_id=network_down("facebook").pk,
        **NO_SEND,
    )
    assert later is not None
    while reroute_plan_next_slice(reroute_id=later.pk):
        pass
    workspace = workspace_for_tests()
    assert (
        window_report(window_id=first.window_id, workspace=workspace).channels["email"]["planned"]
        == 1
    )
    assert window_report(window_id=later.window_id, workspace=workspace).channels == {}


def test_quiet_hours_delays_are_reported_apart_from_the_left_out(settings: Any) -> None:
    contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",))
    Reroute.objects.filter(pk=reroute.pk).update(
        exclusions={"no_consent": 2, "delayed_quiet_hours": 4, "sms_only_used": 1}
    )
    report = window_report(window_id=reroute.window_id, workspace=workspace_for_tests())
    assert report.delayed_quiet_hours == 4
    assert report.left_out == [("No consent on any fallback channel", 2)]
    html = page(member_client(), f"/admin/campaigns/reroute/report/{reroute.window_id}/")
    assert "4 messages were planned to wait for the end of the contact" in html


def test_the_fail_back_section_shows_held_posts_published_late_and_cancelled_sends(
    settings: Any,
) -> None:
    held = rerouted(settings, outage_policy="hold", name="Held one")
    post = SocialPost.objects.get(campaign_id=held.campaign_id)
    assert post.status == PostStatus.HELD
    outage_resolve(window=held.window, reason="back", actor="tests")
    reroute_window_closed(window_id=held.window_id)
    SocialPost.objects.filter(pk=post.pk).update(
        status=PostStatus.PUBLISHED,
        published_at=held.campaign.scheduled_at + timedelta(minutes=42),  # type: ignore[operator]
    )
    report = window_report(window_id=held.window_id, workspace=workspace_for_tests())
    assert [(p.campaign, p.late_s) for p in report.late_posts] == [("Held one", 2520.0)]
    html = page(member_client(), f"/admin/campaigns/reroute/report/{held.window_id}/")
    assert "2520.0 s" in html and "When the network came back" in html


def test_the_chart_places_sends_on_a_real_time_axis() -> None:
    from campaigns.reports import WindowReport

    opened = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    report = WindowReport(
        window_id=1,
        network="instagram",
        state="open",
        opened_at=opened,
        closed_at=None,
        per_minute={
            "email": [
                (opened + timedelta(minutes=1), 10),
                (opened + timedelta(minutes=2), 10),
                (opened + timedelta(minutes=41), 10),
            ]
        },
    )
    svg = sends_per_minute_svg(report)
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None
    xs = [float(p.split(",")[0]) for p in points.group(1).split()]
    peaks = [float(p.split(",")[0]) for p in points.group(1).split() if not p.endswith(",180.0")]
    # One minute apart is ~1/40 of the 39-minute gap: the gap is drawn, not squeezed away.
    assert (peaks[2] - peaks[1]) == pytest.approx(39 * (peaks[1] - peaks[0]), rel=0.01)
    assert xs == sorted(xs)
    assert "outage opened" in svg and "style=" not in svg


def test_the_per_contact_download_says_who_got_what_and_who_was_left_out_why(
    settings: Any,
) -> None:
    got = contact_with(Channel.EMAIL, push=False, external_id="=HYPERLINK(1)")
    nothing = contact_with(push=False, external_id="@nobody")
    blocked = contact_with(Channel.EMAIL, push=False)
    suppression_add(
        contact=blocked, channel="email", reason="hard_bounce", source=ConsentSource.BOUNCE
    )
    reroute = rerouted(settings, fallback=("email",), name="-2+3")
    Delivery.objects.filter(contact=got).update(status=S.DELIVERED, sent_at=timezone.now())
    response = member_client().get(
        f"/admin/campaigns/reroute/report/{reroute.window_id}/contacts.csv"
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = {row[2]: row for row in csv.reader(io.StringIO(text)) if row[2].isdigit()}
    assert rows[str(got.pk)][1] == "'-2+3"  # a formula-looking campaign name is text
    assert rows[str(got.pk)][3] == "'=HYPERLINK(1)"
    assert rows[str(got.pk)][6:8] == ["Email", "Delivered"]
    assert rows[str(nothing.pk)][3] == "'@nobody"
    assert rows[str(nothing.pk)][7:] == [
        "Left out",
        "",
        "",
        "",
        "",
        "No consent on any fallback channel",
    ]
    assert rows[str(blocked.pk)][-1] == "Suppressed (bounced, complained or unsubscribed)"


def test_another_workspaces_member_sees_none_of_our_report_or_campaigns(settings: Any) -> None:
    contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",), name="Our secret sale")
    stranger = member_client(Role.OWNER, workspace=make_workspace())
    html = page(stranger, f"/admin/campaigns/reroute/report/{reroute.window_id}/")
    assert "Our secret sale" not in html
    text = b"".join(
        stranger.get(
            f"/admin/campaigns/reroute/report/{reroute.window_id}/contacts.csv"
        ).streaming_content  # type: ignore[attr-defined]
    ).decode()
    assert "Our secret sale" not in text and len(text.splitlines()) == 1
    assert (
        stranger.get(f"/admin/campaigns/reroute/engagement/{reroute.campaign_id}/").status_code
        == 404
    )
    assert "Our secret sale" not in page(stranger, "/admin/campaigns/reroute/dashboard/")


# --- engagement -----------------------------------------------------------------------------------


def test_engagement_counts_delivered_opened_clicked_bounced_and_unsubscribed(
    settings: Any,
) -> None:
    contacts = [contact_with(Channel.EMAIL, push=False) for _ in range(4)]
    reroute = rerouted(settings, fallback=("email",))
    now = timezone.now()
    sent = now - timedelta(minutes=5)
    by_contact = {d.contact_id: d.pk for d in Delivery.objects.all()}
    Delivery.objects.update(status=S.DELIVERED, sent_at=sent, delivered_at=sent)
    Delivery.objects.filter(pk=by_contact[contacts[0].pk]).update(status=S.OPENED, opened_at=now)
    Delivery.objects.filter(pk=by_contact[contacts[1].pk]).update(
        status=S.CLICKED, opened_at=now, clicked_at=now
    )
    Delivery.objects.filter(pk=by_contact[contacts[2].pk]).update(
        status=S.BOUNCED, delivered_at=None
    )
    consent_revoke(
        contact=contacts[1],
        channel="email",
        purpose="marketing",
        evidence=Evidence(source=ConsentSource.UNSUBSCRIBE_LINK),
    )
    [email] = campaign_engagement(campaign=reroute.campaign)
    assert (email.sent, email.delivered, email.opened, email.clicked, email.bounced) == (
        4,
        3,
        2,
        1,
        1,
    )
    assert email.unsubscribed == 1
    html = page(
        member_client(Role.VIEWER), f"/admin/campaigns/reroute/engagement/{reroute.campaign_id}/"
    )
    assert "<td>Email</td><td>4</td><td>3</td><td>2 (66.7%)</td>" in html


def test_the_engagement_panel_renders_escaped_and_ready_for_the_campaign_form(
    settings: Any,
) -> None:
    from django.utils.safestring import SafeData

    from campaigns.engagement import campaign_engagement_panel

    contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",), name="<b>bold</b>")
    Delivery.objects.update(status=S.DELIVERED, sent_at=timezone.now())
    panel = campaign_engagement_panel(reroute.campaign)
    assert isinstance(panel, SafeData)
    assert "<td>Email</td><td>1</td><td>1</td>" in panel
    assert "<b>bold</b>" not in panel
    assert campaign_engagement_panel(None) == ""


def test_a_rerouted_campaigns_form_shows_its_engagement_and_a_drafts_does_not(
    settings: Any,
) -> None:
    contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",))
    Delivery.objects.update(status=S.DELIVERED, sent_at=timezone.now())
    marketer = member_client(Role.MARKETER)
    url = f"/admin/campaigns/campaign/{reroute.campaign_id}/change/"
    Campaign.objects.filter(pk=reroute.campaign_id).update(status=CampaignStatus.REROUTED)
    assert "<td>Email</td><td>1</td><td>1</td>" in page(marketer, url)
    Campaign.objects.filter(pk=reroute.campaign_id).update(status=CampaignStatus.DRAFT)
    assert "<td>Email</td><td>1</td><td>1</td>" not in page(marketer, url)


def test_the_dashboard_and_report_show_times_in_the_workspaces_zone_and_name_it(
    settings: Any,
) -> None:
    from continuity.models import Workspace as WorkspaceModel

    contact_with(Channel.EMAIL, push=False)
    reroute = rerouted(settings, fallback=("email",))
    WorkspaceModel.objects.filter(pk=reroute.workspace_id).update(timezone="Asia/Tokyo")
    opened = reroute.window.opened_at
    tokyo = timezone.localtime(opened, timezone=zoneinfo.ZoneInfo("Asia/Tokyo"))
    client = member_client(Role.VIEWER)
    dashboard = page(client, "/admin/campaigns/reroute/dashboard/")
    assert "(Asia/Tokyo)" in dashboard and "UTC" not in dashboard
    report = page(client, f"/admin/campaigns/reroute/report/{reroute.window_id}/")
    assert f"opened {tokyo:%Y-%m-%d %H:%M:%S} JST" in report


def test_the_report_tells_fail_back_cancellations_from_a_campaign_cancelled_by_hand(
    settings: Any,
) -> None:
    for _ in range(3):
        contact_with(Channel.EMAIL, push=False)
    on_return = rerouted(
        settings, on_failback=FailbackChoice.CANCEL, fallback=("email",), name="Cancel on return"
    )
    by_hand = rerouted(settings, fallback=("email",), name="Cancelled by hand")
    assert on_return.window_id == by_hand.window_id
    campaign_cancel(campaign=by_hand.campaign)  # the marketer, mid-outage
    outage_resolve(window=on_return.window, reason="back", actor="tests")
    reroute_window_closed(window_id=on_return.window_id)
    assert Delivery.objects.filter(status=S.CANCELLED).count() == 6

    report = window_report(window_id=on_return.window_id, workspace=workspace_for_tests())
    assert (report.cancelled_sends, report.cancelled_other) == (3, 3)
    html = page(member_client(), f"/admin/campaigns/reroute/report/{on_return.window_id}/")
    assert "3 messages not yet sent were cancelled when the network came back" in html
    assert "3 other messages were cancelled during this outage" in html
