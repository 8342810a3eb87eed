"""Workspaces in campaigns and delivery: one outage, each workspace rerouted under its own rules,
and each workspace seeing (and touching) only its own campaigns, reroutes and reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Reroute
from campaigns.reports import window_counts_by_workspace, window_report
from campaigns.reroute import reroute_plan_next_slice, reroute_window_opened
from contacts.consent import consent_grant
from contacts.models import Channel, Contact
from continuity.models import Role, Workspace
from delivery.models import Delivery, DeliveryEvent, ProviderReceipt
from delivery.states import DeliveryStatus as S
from delivery.status import StatusEvent, receipt_workspace_settle, status_events_apply
from tests.campaigns.reroute_factories import make_campaign, network_down
from tests.contacts.factories import evidence, make_contact
from tests.delivery.test_dispatch import make_message
from tests.delivery.test_materialize import contact_with
from tests.workspaces import bearer, make_api_key, make_member, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def install_rules(settings: Any) -> None:
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    settings.REROUTE_DEFAULT_TIMEZONE = "UTC"


def emailable(workspace: Workspace, email: str, *, consented: bool = True) -> Contact:
    contact = make_contact(workspace=workspace, email=email, phone=None)
    if consented:
        consent_grant(
            contact=contact, channel=Channel.EMAIL, purpose="marketing", evidence=evidence()
        )
    return contact


def reroute_everything(window_id: int) -> list[Reroute]:
    reroute_window_opened(window_id=window_id, send=lambda *a, **k: None)
    reroute_ids = list(Reroute.objects.filter(window_id=window_id).values_list("pk", flat=True))
    for reroute_id in reroute_ids:
        while reroute_plan_next_slice(reroute_id=reroute_id):
            pass
    return list(Reroute.objects.filter(pk__in=reroute_ids).order_by("id"))


def messaged_today(contact: Contact) -> None:
    """A fallback message the contact got earlier today from another campaign."""
    earlier = make_message(workspace=contact.workspace, name="earlier today")
    Delivery.objects.create(
        workspace=contact.workspace,
        message=earlier,
        contact=contact,
        channel=Channel.EMAIL,
        status=S.SENT,
    )


def api_for(workspace: Workspace, role: str = Role.MARKETER) -> Client:
    user = make_member(workspace=workspace, role=role)
    client = Client()
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


# --- one outage, two workspaces ------------------------------------------------------------------


def test_one_outage_reroutes_both_workspaces_each_with_its_own_consent() -> None:
    shop, bakery = make_workspace(), make_workspace()
    # The same person is a contact of both businesses, and consented to email in one only.
    emailable(shop, "same@example.com", consented=True)
    emailable(bakery, "same@example.com", consented=False)
    shop_campaign = make_campaign(workspace=shop, fallback=("email",))
    bakery_campaign = make_campaign(workspace=bakery, fallback=("email",))

    reroutes = reroute_everything(network_down().pk)

    assert {r.campaign_id: r.workspace_id for r in reroutes} == {
        shop_campaign.pk: shop.pk,
        bakery_campaign.pk: bakery.pk,
    }
    sent_to = list(Delivery.objects.values_list("workspace_id", "contact__email"))
    assert sent_to == [(shop.pk, "same@example.com")]
    bakery_reroute = next(r for r in reroutes if r.workspace_id == bakery.pk)
    assert bakery_reroute.planned == {}
    assert bakery_reroute.exclusions["no_consent"] == 1
    # Every row written on the way carries the campaign's workspace.
    assert set(DeliveryEvent.objects.values_list("workspace_id", flat=True)) <= {shop.pk}
    assert {p.workspace_id for p in shop_campaign.posts.all()} == {shop.pk}


def test_each_workspace_caps_messages_per_day_by_its_own_setting_and_its_own_sends() -> None:
    strict = make_workspace(frequency_cap_per_day=1)
    relaxed = make_workspace()  # empty: the install's cap, which is off here
    busy_strict = emailable(strict, "busy@example.com")
    busy_relaxed = emailable(relaxed, "busy@example.com")
    messaged_today(busy_strict)
    messaged_today(busy_relaxed)
    fresh_strict = emailable(strict, "fresh@example.com")
    make_campaign(workspace=strict, fallback=("email",))
    make_campaign(workspace=relaxed, fallback=("email",))

    reroutes = {r.workspace_id: r for r in reroute_everything(network_down().pk)}

    assert reroutes[strict.pk].planned == {"email": 1}
    assert reroutes[strict.pk].exclusions.get("frequency_cap") == 1
    assert reroutes[relaxed.pk].planned == {"email": 1}
    assert "frequency_cap" not in reroutes[relaxed.pk].exclusions
    planned = Delivery.objects.filter(status=S.QUEUED).values_list("contact_id", flat=True)
    assert set(planned) == {fresh_strict.pk, busy_relaxed.pk}


def test_a_send_in_another_workspace_does_not_count_against_the_cap(settings: Any) -> None:
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 1
    here, elsewhere = make_workspace(), make_workspace()
    mine = emailable(here, "person@example.com")
    messaged_today(emailable(elsewhere, "person@example.com"))
    make_campaign(workspace=here, fallback=("email",))

    reroute_everything(network_down().pk)

    assert list(Delivery.objects.filter(status=S.QUEUED).values_list("contact_id", flat=True)) == [
        mine.pk
    ]


def test_the_sms_budget_falls_back_to_the_workspaces_own() -> None:
    frugal = make_workspace(sms_budget_segments=1)
    for _ in range(3):
        contact_with(Channel.SMS, email=False, push=False, workspace=frugal)
    make_campaign(workspace=frugal, fallback=("sms",), sms_budget_segments=None)

    (reroute,) = reroute_everything(network_down().pk)

    assert reroute.planned == {"sms": 1}
    assert reroute.exclusions["over_sms_budget"] == 2


def test_quiet_hours_follow_the_workspace_at_plan_time_and_again_at_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 23:30 UTC. The night shop keeps SMS quiet 23:00-07:00 in its own zone (UTC); the install
    # has no quiet hours, so the day shop's SMS leave at once.
    night = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: night)
    night_shop = make_workspace(quiet_hours_sms="23:00-07:00", timezone="UTC")
    day_shop = make_workspace()
    # No zone of their own: the workspace's default zone decides.
    contact_with(Channel.SMS, email=False, push=False, tz="", workspace=night_shop)
    contact_with(Channel.SMS, email=False, push=False, tz="", workspace=day_shop)
    make_campaign(workspace=night_shop, fallback=("sms",))
    make_campaign(workspace=day_shop, fallback=("sms",))

    reroutes = {r.workspace_id: r for r in reroute_everything(network_down().pk)}

    assert reroutes[night_shop.pk].exclusions.get("delayed_quiet_hours") == 1
    assert "delayed_quiet_hours" not in reroutes[day_shop.pk].exclusions
    held = Delivery.objects.get(workspace=night_shop)
    assert held.not_before == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    assert Delivery.objects.get(workspace=day_shop).not_before is None

    # The workspace's window set after planning still holds the row back at send time.
    from delivery.claim import deliveries_claim
    from delivery.quiet_hours import quiet_rules

    day_row = Delivery.objects.get(workspace=day_shop)
    assert day_row.status == S.QUEUED
    day_shop.quiet_hours_sms = "22:00-06:00"
    day_shop.save()
    claimed = deliveries_claim(
        ids=[day_row.pk], channel="sms", purpose="marketing", quiet=quiet_rules(workspace=day_shop)
    )
    assert claimed == []
    day_row.refresh_from_db()
    assert day_row.not_before == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


# --- reports and the API: each workspace sees its own ----------------------------------------


def _two_workspaces_rerouted() -> tuple[Workspace, Workspace, int]:
    shop, bakery = make_workspace(), make_workspace()
    for workspace, count in ((shop, 2), (bakery, 3)):
        for n in range(count):
            emailable(workspace, f"p{n}@example.com")
        make_campaign(workspace=workspace, fallback=("email",), name=f"{workspace.slug} sale")
    window = network_down()
    reroute_everything(window.pk)
    return shop, bakery, window.pk


def test_each_workspaces_window_report_lists_only_its_own_campaigns_and_deliveries() -> None:
    shop, bakery, window_id = _two_workspaces_rerouted()

    shop_report = window_report(window_id=window_id, workspace=shop)
    bakery_report = window_report(window_id=window_id, workspace=bakery)

    assert [c.campaign for c in shop_report.campaigns] == [f"{shop.slug} sale"]
    assert shop_report.channels["email"]["planned"] == 2
    assert [c.campaign for c in bakery_report.campaigns] == [f"{bakery.slug} sale"]
    assert bakery_report.channels["email"]["planned"] == 3
    counts = {row.workspace: row for row in window_counts_by_workspace(window_id=window_id)}
    assert counts[shop.slug].planned == 2 and counts[bakery.slug].planned == 3
    assert not any(hasattr(row, "campaign") for row in counts.values())


def test_the_reroute_api_shows_each_key_its_own_workspaces_reroutes_and_report() -> None:
    shop, bakery, window_id = _two_workspaces_rerouted()
    shop_api = api_for(shop, Role.VIEWER)

    listed = shop_api.get("/api/v1/reroutes/").json()
    assert {r["campaign"] for r in listed} == set(
        Campaign.objects.filter(workspace=shop).values_list("pk", flat=True)
    )
    report = shop_api.get(f"/api/v1/reroutes/windows/{window_id}/report/").json()
    assert [c["campaign"] for c in report["campaigns"]] == [f"{shop.slug} sale"]
    assert report["channels"]["email"]["planned"] == 2
    as_csv = shop_api.get(f"/api/v1/reroutes/windows/{window_id}/report/?export=csv")
    assert f"{shop.slug} sale" in as_csv.content.decode()
    assert f"{bakery.slug} sale" not in as_csv.content.decode()
    # Counts per workspace are for operators: a workspace key is refused, naming the right.
    refused = shop_api.get(f"/api/v1/reroutes/windows/{window_id}/workspaces/")
    assert refused.status_code == 403
    assert "outages.view_outagewindow" in refused.json()["detail"]


def test_an_operator_reads_counts_per_workspace_and_no_names() -> None:
    from django.contrib.auth.models import Group, User

    from continuity.roles import OPERATOR_GROUP, roles_sync

    shop, bakery, window_id = _two_workspaces_rerouted()
    roles_sync()
    operator = User.objects.create_user("operator", is_staff=True)
    operator.groups.add(Group.objects.get(name=OPERATOR_GROUP))
    api = Client()
    api.defaults.update(bearer(make_api_key(user=operator, workspace=None)))

    body = api.get(f"/api/v1/reroutes/windows/{window_id}/workspaces/").json()

    rows = {row["workspace"]: row for row in body["workspaces"]}
    assert rows[shop.slug]["planned"] == 2 and rows[bakery.slug]["planned"] == 3
    assert "sale" not in str(body)


def test_the_drill_api_drills_only_its_workspace_and_refuses_another_ones_campaign() -> None:
    shop, bakery = make_workspace(), make_workspace()
    emailable(shop, "a@example.com")
    mine = make_campaign(
        workspace=shop, fallback=("email",), status=CampaignStatus.SCHEDULED, due_in_minutes=30
    )
    theirs = make_campaign(
        workspace=bakery, fallback=("email",), status=CampaignStatus.SCHEDULED, due_in_minutes=30
    )
    api = api_for(shop)

    drill = api.post("/api/v1/drills/", {"network": "instagram"}, "application/json").json()
    assert [c["campaign_id"] for c in drill["campaigns"]] == [mine.pk]
    refused = api.post(
        "/api/v1/drills/",
        {"network": "instagram", "campaign_ids": [theirs.pk]},
        "application/json",
    )
    assert refused.status_code == 400
    assert f"#{theirs.pk}" in str(refused.json()["detail"])
    viewer = api_for(shop, Role.VIEWER).post(
        "/api/v1/drills/", {"network": "instagram"}, "application/json"
    )
    assert viewer.status_code == 403 and "campaigns.run_drill" in viewer.json()["detail"]


def test_the_drill_command_takes_a_workspace() -> None:
    shop, bakery = make_workspace(), make_workspace()
    mine = make_campaign(workspace=shop, status=CampaignStatus.SCHEDULED, due_in_minutes=30)
    theirs = make_campaign(workspace=bakery, status=CampaignStatus.SCHEDULED, due_in_minutes=30)
    out = StringIO()
    call_command("outage_drill", "instagram", "--workspace", shop.slug, stdout=out)
    assert f"#{mine.pk} " in out.getvalue() and f"#{theirs.pk} " not in out.getvalue()
    everyone = StringIO()
    call_command("outage_drill", "instagram", stdout=everyone)
    assert f"#{mine.pk} " in everyone.getvalue() and f"#{theirs.pk} " in everyone.getvalue()


# --- the campaigns API across workspaces ---------------------------------------------------------


def test_another_workspaces_campaign_is_not_found_and_stays_unchanged() -> None:
    shop, bakery = make_workspace(), make_workspace()
    theirs = make_campaign(workspace=bakery, status=CampaignStatus.DRAFT, due_in_minutes=60)
    before = Campaign.objects.filter(pk=theirs.pk).values().get()
    api = api_for(shop, Role.OWNER)

    for method, path in [
        ("get", f"/api/v1/campaigns/{theirs.pk}/"),
        ("get", f"/api/v1/campaigns/{theirs.pk}/status/"),
        ("post", f"/api/v1/campaigns/{theirs.pk}/schedule/"),
        ("post", f"/api/v1/campaigns/{theirs.pk}/publish-now/"),
        ("post", f"/api/v1/campaigns/{theirs.pk}/cancel/"),
        ("patch", f"/api/v1/campaigns/{theirs.pk}/"),
        ("delete", f"/api/v1/campaigns/{theirs.pk}/"),
    ]:
        response = getattr(api, method)(path, {"name": "mine now"}, "application/json")
        assert response.status_code == 404, (method, path, response.content)
    assert Campaign.objects.filter(pk=theirs.pk).values().get() == before
    assert api.get("/api/v1/campaigns/").json()["results"] == []


def test_a_payload_naming_another_workspaces_segment_message_or_account_is_refused() -> None:
    from tests.campaigns.factories import make_account, make_segment

    shop, bakery = make_workspace(), make_workspace()
    api = api_for(shop)
    foreign = {
        "segment": make_segment(workspace=bakery).pk,
        "message": make_message(workspace=bakery).pk,
        "accounts": [make_account(workspace=bakery).pk],
    }
    for field, value in foreign.items():
        response = api.post("/api/v1/campaigns/", {"name": "x", field: value}, "application/json")
        assert response.status_code == 400, field
        assert field in response.json()["detail"]
    assert not Campaign.objects.filter(workspace=shop).exists()
    created = api.post("/api/v1/campaigns/", {"name": "ours"}, "application/json")
    assert created.status_code == 201
    assert Campaign.objects.get(pk=created.json()["id"]).workspace_id == shop.pk


def test_a_viewer_may_read_but_not_schedule_and_is_told_which_right_is_missing() -> None:
    shop = make_workspace()
    campaign = make_campaign(workspace=shop, status=CampaignStatus.DRAFT, due_in_minutes=60)
    viewer = api_for(shop, Role.VIEWER)

    assert viewer.get(f"/api/v1/campaigns/{campaign.pk}/").status_code == 200
    refused = viewer.post(f"/api/v1/campaigns/{campaign.pk}/schedule/", {}, "application/json")
    assert refused.status_code == 403
    assert "campaigns.change_campaign" in refused.json()["detail"]
    created = viewer.post("/api/v1/campaigns/", {"name": "nope"}, "application/json")
    assert created.status_code == 403 and "campaigns.add_campaign" in created.json()["detail"]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


# --- the admin's reroute pages ----------------------------------------------------------------


def _admin(workspace: Workspace, role: str) -> Client:
    client = Client()
    client.force_login(make_member(workspace=workspace, role=role))
    return client


def test_the_admin_report_dashboard_and_csv_show_a_workspace_only_its_own() -> None:
    shop, bakery, window_id = _two_workspaces_rerouted()
    admin = _admin(shop, Role.VIEWER)

    page = admin.get(f"/admin/campaigns/reroute/report/{window_id}/").content.decode()
    assert f"{shop.slug} sale" in page and f"{bakery.slug} sale" not in page
    csv_text = admin.get(f"/admin/campaigns/reroute/report/{window_id}/csv/").content.decode()
    assert f"{shop.slug} sale" in csv_text and f"{bakery.slug} sale" not in csv_text
    listing = admin.get("/admin/campaigns/reroute/").content.decode()
    assert f"{shop.slug} sale" in listing and f"{bakery.slug} sale" not in listing


def test_the_admin_drill_needs_the_drill_right() -> None:
    shop = make_workspace()
    refused = _admin(shop, Role.VIEWER).get("/admin/campaigns/reroute/drill/?network=x")
    assert refused.status_code == 403
    allowed = _admin(shop, Role.MARKETER).get("/admin/campaigns/reroute/drill/?network=x")
    assert allowed.status_code == 200


def test_a_staff_user_without_a_role_here_gets_none_of_the_reroute_pages() -> None:
    from django.contrib.auth.models import User

    window = network_down()
    nobody = Client()
    nobody.force_login(User.objects.create_user("staff-only", is_staff=True))
    for path in (
        "/admin/campaigns/reroute/dashboard/",
        f"/admin/campaigns/reroute/report/{window.pk}/",
        f"/admin/campaigns/reroute/report/{window.pk}/csv/",
        "/admin/campaigns/reroute/drill/?network=x",
    ):
        assert nobody.get(path).status_code == 403, path


# --- provider receipts --------------------------------------------------------------------------


def _sent(workspace: Workspace, provider_id: str) -> Delivery:
    contact = emailable(workspace, f"{provider_id}@example.com")
    return Delivery.objects.create(
        workspace=workspace,
        message=make_message(workspace=workspace),
        contact=contact,
        channel=Channel.EMAIL,
        status=S.SENT,
        provider="sendgrid",
        provider_message_id=provider_id,
        sent_at=timezone.now() - timedelta(seconds=5),
    )


def _receipt() -> ProviderReceipt:
    return ProviderReceipt.objects.create(provider="sendgrid", kind="events")


def _delivered(*provider_ids: str) -> list[StatusEvent]:
    return [
        StatusEvent(provider="sendgrid", message_id=p, status="delivered") for p in provider_ids
    ]


def test_a_receipt_takes_the_workspace_of_the_messages_it_reports_on_only_when_one() -> None:
    shop, bakery = make_workspace(), make_workspace()
    _sent(shop, "shop-1")
    _sent(shop, "shop-2")
    _sent(bakery, "bakery-1")

    own = _receipt()
    receipt_workspace_settle(receipt=own, result=status_events_apply(events=_delivered("shop-1")))
    mixed = _receipt()
    receipt_workspace_settle(
        receipt=mixed, result=status_events_apply(events=_delivered("shop-2", "bakery-1"))
    )
    unknown = _receipt()
    receipt_workspace_settle(
        receipt=unknown, result=status_events_apply(events=_delivered("nobody"))
    )

    own.refresh_from_db()
    mixed.refresh_from_db()
    unknown.refresh_from_db()
    assert own.workspace_id == shop.pk
    assert mixed.workspace_id is None  # install-level: operators only
    assert unknown.workspace_id is None


def test_an_operator_sees_the_window_as_counts_per_workspace_in_the_admin() -> None:
    from django.contrib.auth.models import Group, User

    from continuity.roles import OPERATOR_GROUP, roles_sync

    shop, bakery, window_id = _two_workspaces_rerouted()
    roles_sync()
    operator = User.objects.create_user("operator-admin", is_staff=True)
    operator.groups.add(Group.objects.get(name=OPERATOR_GROUP))
    client = Client()
    client.force_login(operator)

    page = client.get(f"/admin/campaigns/reroute/report/{window_id}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert shop.slug in text and bakery.slug in text
    assert "sale" not in text  # no campaign names, no contacts: counts only
    assert client.get(f"/admin/campaigns/reroute/report/{window_id}/csv/").status_code == 403
    assert client.get("/admin/campaigns/reroute/dashboard/").status_code == 200


def test_a_workspaces_quiet_hours_and_zone_fall_back_to_the_installs(settings: Any) -> None:
    from datetime import time

    from delivery.quiet_hours import contact_zone, quiet_rules, quiet_window

    settings.REROUTE_QUIET_HOURS = {"sms": "21:00-08:00"}
    own = quiet_rules(workspace=Workspace(quiet_hours_sms="22:30-07:00", timezone="Asia/Tokyo"))
    empty = quiet_rules(workspace=Workspace())
    broken = quiet_rules(workspace=Workspace(quiet_hours_sms="late-early"))

    assert quiet_window(channel="sms", rules=own) is not None
    assert quiet_window(channel="sms", rules=own).start == time(22, 30)  # type: ignore[union-attr]
    assert quiet_window(channel="sms", rules=empty).start == time(21, 0)  # type: ignore[union-attr]
    # A malformed window never leaves SMS unguarded: the install's applies.
    assert quiet_window(channel="sms", rules=broken).start == time(21, 0)  # type: ignore[union-attr]
    assert str(contact_zone(name="", default=own.default_timezone)) == "Asia/Tokyo"
    assert str(contact_zone(name="Europe/Paris", default=own.default_timezone)) == "Europe/Paris"
    assert str(contact_zone(name="", default=empty.default_timezone)) == "UTC"
