"""The per-window report, its CSV and chart, the admin pages and the API, with hostile input."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, Reroute
from campaigns.reports import sends_per_minute_svg, window_report, window_report_csv
from campaigns.reroute import campaign_network_down, reroute_plan_next_slice
from contacts.models import Channel
from continuity.models import Role
from delivery.claim import deliveries_claim
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from tests.campaigns.reroute_factories import make_campaign, network_down
from tests.delivery.test_materialize import contact_with
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


def rerouted_window(settings: Any) -> int:
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    for _ in range(3):
        contact_with(Channel.EMAIL, push=False)
    contact_with(Channel.SMS, email=False, push=False)
    contact_with()
    campaign = make_campaign(fallback=("email", "sms"))
    reroute = _planned_on_instagram_outage(campaign)
    now = timezone.now()
    emails = list(Delivery.objects.filter(channel="email").order_by("id"))
    Delivery.objects.filter(pk=emails[0].pk).update(status=S.DELIVERED, sent_at=now)
    Delivery.objects.filter(pk=emails[1].pk).update(status=S.FAILED)
    Delivery.objects.filter(channel="sms").update(
        status=S.SENT, sent_at=now + timedelta(minutes=2), cost_units=2
    )
    return reroute.window_id


def _planned_on_instagram_outage(campaign: Campaign) -> Reroute:
    """Instagram goes down and every slice of the campaign's reroute is planned (nothing sent)."""
    window = network_down()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=lambda *a, **k: None
    )
    assert reroute is not None
    while reroute_plan_next_slice(reroute_id=reroute.pk):
        pass
    return reroute


def test_the_window_report_adds_up(settings: Any) -> None:
    report = window_report(window_id=rerouted_window(settings), workspace=workspace_for_tests())
    assert report.channels["email"] == {
        "planned": 3,
        "sent": 1,
        "delivered": 1,
        "failed": 1,
        "unknown": 0,
        "cancelled": 0,
        "suppressed": 0,
        "waiting": 0,
    }
    assert report.channels["sms"]["sent"] == 1
    assert report.sms_segments_spent == 2
    assert report.exclusions == {"no_consent": 1}
    assert report.first_send_s is not None and report.last_send_s is not None
    assert report.last_send_s - report.first_send_s == pytest.approx(120, abs=1)
    assert len(report.campaigns) == 1 and report.campaigns[0].sent == 2
    rows = list(csv.reader(io.StringIO(window_report_csv(report))))
    assert ["Email", "3", "1", "1", "1", "0", "0", "0", "0"] in rows
    svg = sends_per_minute_svg(report)
    assert svg.startswith("<svg") and "polyline" in svg and "<script" not in svg


def test_the_window_report_csv_writes_a_formula_campaign_name_as_text(settings: Any) -> None:
    window_id = rerouted_window(settings)
    Campaign.objects.update(name='=HYPERLINK("http://x")')
    rows = list(
        csv.reader(
            io.StringIO(
                window_report_csv(
                    window_report(window_id=window_id, workspace=workspace_for_tests())
                )
            )
        )
    )
    names = [row[1] for row in rows if len(row) == 9 and row[0].isdigit()]
    assert names == ['\'=HYPERLINK("http://x")']


def test_rows_held_for_quiet_hours_at_send_time_count_as_waiting_beside_planning_delays(
    settings: Any, admin_client: Client
) -> None:
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    now = timezone.now()
    start = (now + timedelta(seconds=3)).replace(microsecond=0)
    end = (now + timedelta(hours=3)).replace(microsecond=0)
    # Two hours ahead (Etc/GMT-2) the window is open already; on UTC it opens in 2-3 seconds.
    settings.REROUTE_QUIET_HOURS = {"sms": f"{start:%H:%M:%S}-{end:%H:%M:%S}"}
    for zone in ("Etc/GMT-2", "Etc/GMT-2", "UTC", "UTC", "UTC"):
        contact_with(Channel.SMS, email=False, push=False, tz=zone)
    campaign = make_campaign(fallback=("sms",))
    reroute = _planned_on_instagram_outage(campaign)
    reroute.refresh_from_db()
    assert reroute.exclusions["delayed_quiet_hours"] == 2
    ids = list(Delivery.objects.values_list("pk", flat=True))
    while timezone.now() < start:  # the UTC contacts' quiet hours begin before their claim
        time.sleep(0.05)
    assert deliveries_claim(ids=ids, channel="sms", purpose="marketing") == []

    report = window_report(window_id=reroute.window_id, workspace=reroute.campaign.workspace)
    assert report.channels["sms"]["waiting"] == 5  # 2 delayed when planned, 3 held at send time
    assert report.delayed_quiet_hours == 2
    assert "delayed_quiet_hours" not in report.exclusions
    assert Delivery.objects.filter(status=S.QUEUED, not_before__gt=timezone.now()).count() == 5
    dashboard = admin_client.get("/admin/campaigns/reroute/dashboard/")
    assert b"5 waiting" in dashboard.content
    page = admin_client.get(f"/admin/campaigns/reroute/report/{reroute.window_id}/")
    assert b"<th>Waiting (quiet hours or back-off)</th>" in page.content


def test_admin_dashboard_report_csv_and_drill_pages(
    admin_client: Client, settings: Any, drill_worker: Any
) -> None:
    window_id = rerouted_window(settings)
    dashboard = admin_client.get("/admin/campaigns/reroute/dashboard/")
    assert dashboard.status_code == 200
    assert b"<progress" in dashboard.content
    page = admin_client.get(f"/admin/campaigns/reroute/report/{window_id}/")
    assert page.status_code == 200
    assert b"<svg" in page.content and b"No consent on any fallback channel" in page.content
    assert b"no_consent" not in page.content
    download = admin_client.get(f"/admin/campaigns/reroute/report/{window_id}/csv/")
    assert download["Content-Type"] == "text/csv"
    drill = admin_client.get("/admin/campaigns/reroute/drill/?network=x")
    assert drill.status_code == 200
    assert b"nothing would change" in drill.content
    listing = admin_client.get("/admin/campaigns/reroute/")
    assert listing.status_code == 200


def marketer_api() -> Client:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.MARKETER)
    client = Client()
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def test_the_api_needs_a_token_and_explains_bad_input(client: Client) -> None:
    assert client.get("/api/v1/reroutes/").status_code == 401
    api = marketer_api()
    assert api.get("/api/v1/reroutes/?window=abc").json()["error"] == "invalid"
    missing = api.get("/api/v1/reroutes/windows/999999/report/")
    assert missing.status_code == 404
    bad = api.post("/api/v1/drills/", {"network": "myspace"}, "application/json")
    assert bad.status_code == 400
    assert "unknown network" in str(bad.json()["detail"])
    good = api.post("/api/v1/drills/", {"network": "x"}, "application/json")
    assert good.status_code == 200
    assert good.json()["campaigns"] == []


def test_the_api_report_in_json_and_csv(settings: Any) -> None:
    window_id = rerouted_window(settings)
    api = marketer_api()
    body = api.get(f"/api/v1/reroutes/windows/{window_id}/report/").json()
    assert body["channels"]["email"]["planned"] == 3
    assert body["per_minute"]["sms"][0]["sent"] == 1
    as_csv = api.get(f"/api/v1/reroutes/windows/{window_id}/report/?export=csv")
    assert as_csv["Content-Type"] == "text/csv"
    listed = api.get(f"/api/v1/reroutes/?window={window_id}").json()
    assert len(listed) == 1 and listed[0]["status"] == "sending"


def test_the_chart_marked_safe_for_the_admin_escapes_every_text_it_carries() -> None:
    """The admin inserts the chart with mark_safe: nothing in it may come through as markup, even
    a channel name no channel has."""
    from campaigns.reports import WindowReport

    now = timezone.now()
    report = WindowReport(
        window_id=1,
        network="instagram",
        state="open",
        opened_at=now,
        closed_at=None,
        per_minute={'<script>alert(1)</script>"': [(now, 3)], "email": [(now, 1)]},
    )
    svg = sends_per_minute_svg(report)
    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in svg


def test_the_reroute_list_draws_every_rows_progress_with_one_query(
    admin_client: Client, settings: Any, django_assert_max_num_queries: Any
) -> None:
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    for _ in range(2):
        contact_with(Channel.EMAIL, push=False)
    window = network_down()
    for _ in range(6):
        campaign = make_campaign(fallback=("email",))
        reroute = campaign_network_down(
            campaign_id=campaign.pk, network="instagram", window_id=window.pk,
            send=lambda *a, **k: None,
        )  # fmt: skip
        assert reroute is not None
        while reroute_plan_next_slice(reroute_id=reroute.pk):
            pass
    admin_client.get("/admin/campaigns/reroute/")  # warm the session and caches
    with django_assert_max_num_queries(20):
        listing = admin_client.get("/admin/campaigns/reroute/")
    assert listing.status_code == 200
    assert listing.content.decode().count("<progress") == 6
