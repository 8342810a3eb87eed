"""The reroute engine: policies, once-only planning, budgets, cancellation and fail-back."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from campaigns.models import (
    CampaignStatus,
    FailbackChoice,
    OutagePolicy,
    PostStatus,
    Reroute,
    RerouteStatus,
    SocialPost,
)
from campaigns.reroute import (
    campaign_network_down,
    reroute_campaign_cancelled,
    reroute_holds_check,
    reroute_plan_next_slice,
    reroute_window_closed,
    reroute_window_opened,
)
from contacts.consent import consent_revoke
from contacts.models import Channel, Segment
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from tests.campaigns.reroute_factories import make_campaign, network_down
from tests.contacts.factories import evidence
from tests.delivery.test_materialize import contact_with
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db
NO_QUIET = override_settings(REROUTE_QUIET_HOURS={}, REROUTE_FREQUENCY_CAP_PER_DAY=0)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name, kwargs))


def plan_all(reroute_id: int) -> int:
    slices = 0
    while reroute_plan_next_slice(reroute_id=reroute_id):
        slices += 1
    return slices


@NO_QUIET
def test_a_reroute_happens_once_however_often_the_outage_is_reported() -> None:
    campaign = make_campaign()
    window = network_down()
    recorder = Recorder()
    results = [
        campaign_network_down(
            campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=recorder
        )
        for _ in range(10)
    ]
    assert sum(r is not None for r in results) == 1
    assert Reroute.objects.count() == 1
    post = SocialPost.objects.get()
    assert post.status == PostStatus.REROUTED
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.REROUTED


@pytest.mark.django_db(transaction=True)
@NO_QUIET
def test_two_concurrent_triggers_create_one_reroute() -> None:
    campaign = make_campaign()
    window = network_down()
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def trigger() -> None:
        barrier.wait()
        try:
            outcomes.append(
                campaign_network_down(
                    campaign_id=campaign.pk,
                    network="instagram",
                    window_id=window.pk,
                    send=Recorder(),
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Reroute.objects.count() == 1
    assert sum(o is not None for o in outcomes) == 1


@NO_QUIET
def test_planning_reaches_each_contact_once_on_its_first_consented_channel(
    settings: Any,
) -> None:
    settings.REROUTE_SLICE_SIZE = 2
    settings.REROUTE_FIRST_SLICE_SIZE = 2
    push = contact_with(Channel.PUSH, Channel.EMAIL)
    email = contact_with(Channel.EMAIL, push=False)
    sms = contact_with(Channel.SMS, email=False, push=False)
    revoked = contact_with(Channel.EMAIL)
    consent_revoke(contact=revoked, channel="email", purpose="marketing", evidence=evidence())
    campaign = make_campaign()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    assert plan_all(reroute.pk) == 2
    chosen = dict(Delivery.objects.values_list("contact_id", "channel"))
    assert chosen == {push.pk: "push", email.pk: "email", sms.pk: "sms"}
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.QUEUED}
    reroute.refresh_from_db()
    assert reroute.status == RerouteStatus.SENDING
    assert reroute.planned == {"push": 1, "email": 1, "sms": 1}
    assert reroute.exclusions["no_consent"] == 1
    # A redelivered planning task finds the reroute no longer planning: nothing more happens.
    assert reroute_plan_next_slice(reroute_id=reroute.pk) is False
    assert Delivery.objects.count() == 3


@NO_QUIET
def test_the_sms_budget_reached_mid_plan_stops_sms_and_the_others_fall_through(
    settings: Any,
) -> None:
    settings.REROUTE_SLICE_SIZE = 2
    for _ in range(3):
        contact_with(Channel.SMS, Channel.EMAIL, push=False)
    sms_only = [contact_with(Channel.SMS, email=False, push=False) for _ in range(2)]
    campaign = make_campaign(fallback=("sms", "email"), sms_budget_segments=3)
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    plan_all(reroute.pk)
    sms = Delivery.objects.filter(channel="sms")
    assert sms.count() == 3
    assert set(sms_only) <= {d.contact for d in sms}
    assert Delivery.objects.filter(channel="email").count() == 2
    reroute.refresh_from_db()
    assert reroute.sms_segments_planned == 3


@NO_QUIET
def test_a_segment_that_matches_nobody_plans_nothing_and_finishes() -> None:
    contact_with(Channel.EMAIL)
    segment = Segment.objects.create(
        workspace=workspace_for_tests(), name="nobody", tags_all=["no-such-tag"]
    )
    campaign = make_campaign(segment=segment)
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    assert plan_all(reroute.pk) == 0
    reroute.refresh_from_db()
    assert reroute.status == RerouteStatus.SENDING
    assert reroute.planned == {}
    assert Delivery.objects.count() == 0


@NO_QUIET
def test_a_segment_saved_with_an_invalid_rule_plans_nobody_instead_of_failing() -> None:
    from campaigns.drill import outage_drill

    contact = contact_with(Channel.EMAIL)
    contact.attributes = {"city": "Lyon"}
    contact.save()
    # As a row from before keys were checked: `city__regex` once became a regex lookup and "("
    # an SQL error in the middle of planning.
    segment = Segment.objects.create(
        workspace=workspace_for_tests(),
        name="old rule",
        attribute_filters=[{"key": "city__regex", "op": "eq", "value": "("}],
    )
    campaign = make_campaign(segment=segment)
    drill = outage_drill(network="instagram", workspace=campaign.workspace)
    assert [d.campaign_id for d in drill.campaigns] == [campaign.pk]
    assert drill.planned == {}
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    assert plan_all(reroute.pk) == 0
    reroute.refresh_from_db()
    assert reroute.status == RerouteStatus.SENDING
    assert reroute.planned == {}
    assert Delivery.objects.count() == 0


def test_only_the_down_networks_share_is_rerouted() -> None:
    campaign = make_campaign(networks=("instagram", "x"))
    campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    statuses = dict(SocialPost.objects.values_list("network", "status"))
    assert statuses == {"instagram": PostStatus.REROUTED, "x": PostStatus.PENDING}


def test_skip_records_it_and_sends_nothing() -> None:
    campaign = make_campaign(outage_policy=OutagePolicy.SKIP)
    recorder = Recorder()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=recorder
    )
    assert reroute is not None
    assert reroute.status == RerouteStatus.SKIPPED
    assert recorder.calls == []
    assert SocialPost.objects.get().status == PostStatus.SKIPPED


def test_hold_then_reroute_waits_then_reroutes_while_the_network_stays_down() -> None:
    campaign = make_campaign(
        outage_policy=OutagePolicy.HOLD_THEN_REROUTE, hold_then_reroute_minutes=10
    )
    recorder = Recorder()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=recorder
    )
    assert reroute is not None
    assert reroute.status == RerouteStatus.HOLDING
    assert SocialPost.objects.get().status == PostStatus.HELD
    assert reroute_holds_check(now=timezone.now() + timedelta(minutes=5), send=recorder) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.db.transaction.on_commit", lambda fn, *a, **k: fn())
        started = reroute_holds_check(now=timezone.now() + timedelta(minutes=11), send=recorder)
    assert started == 1
    assert recorder.calls == [("campaigns.reroute_plan", {"reroute_id": reroute.pk})]
    assert SocialPost.objects.get().status == PostStatus.REROUTED


def test_fail_back_publishes_held_posts_late() -> None:
    campaign = make_campaign(outage_policy=OutagePolicy.HOLD)
    window = network_down()
    campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=Recorder()
    )
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.HELD
    result = reroute_window_closed(window_id=window.pk)
    assert result["released_posts"] == 1
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert SocialPost.objects.get().status == PostStatus.PENDING


@NO_QUIET
def test_fail_back_with_cancel_cancels_what_has_not_been_sent() -> None:
    for _ in range(3):
        contact_with(Channel.EMAIL, push=False)
    campaign = make_campaign(on_failback=FailbackChoice.CANCEL)
    window = network_down()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=Recorder()
    )
    assert reroute is not None
    plan_all(reroute.pk)
    first = Delivery.objects.order_by("id").first()
    assert first is not None
    Delivery.objects.filter(pk=first.pk).update(status=S.SENT)
    result = reroute_window_closed(window_id=window.pk)
    assert result["cancelled_deliveries"] == 2
    assert Delivery.objects.get(pk=first.pk).status == S.SENT


@NO_QUIET
def test_a_campaign_cancelled_while_rerouting_cancels_its_remaining_deliveries() -> None:
    for _ in range(3):
        contact_with(Channel.EMAIL, push=False)
    campaign = make_campaign()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    plan_all(reroute.pk)
    assert reroute_campaign_cancelled(campaign_id=campaign.pk) == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.CANCELLED}


def test_an_outage_on_a_network_no_campaign_uses_touches_nothing() -> None:
    make_campaign(networks=("facebook",))
    assert reroute_window_opened(window_id=network_down("x").pk, send=Recorder()) == 0
    assert Reroute.objects.count() == 0


def test_a_window_reroutes_due_campaigns_and_recent_failures_but_not_future_ones() -> None:
    due = make_campaign()
    later = make_campaign(due_in_minutes=60)
    failed_recently = make_campaign(due_in_minutes=-20)
    SocialPost.objects.filter(campaign=failed_recently).update(status=PostStatus.FAILED)
    touched = reroute_window_opened(window_id=network_down().pk, send=Recorder())
    assert touched == 2
    assert set(Reroute.objects.values_list("campaign_id", flat=True)) == {
        due.pk,
        failed_recently.pk,
    }
    assert SocialPost.objects.get(campaign=later).status == PostStatus.PENDING


@NO_QUIET
def test_the_drill_predicts_exactly_what_the_reroute_then_plans(settings: Any) -> None:
    from campaigns.drill import outage_drill

    settings.REROUTE_SLICE_SIZE = 3
    for _ in range(3):
        contact_with(Channel.SMS, Channel.EMAIL, push=False)
    for _ in range(2):
        contact_with(Channel.SMS, email=False, push=False)
    contact_with(Channel.PUSH)
    contact_with()
    campaign = make_campaign(fallback=("sms", "email", "push"), sms_budget_segments=3)
    drill = outage_drill(network="instagram", workspace=campaign.workspace)
    assert [d.campaign_id for d in drill.campaigns] == [campaign.pk]
    assert Delivery.objects.count() == 0
    assert Reroute.objects.count() == 0
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    plan_all(reroute.pk)
    reroute.refresh_from_db()
    assert drill.planned == reroute.planned == {"sms": 3, "email": 2, "push": 1}
    real_exclusions = {k: v for k, v in reroute.exclusions.items() if not k.startswith("sms_")}
    assert drill.exclusions == real_exclusions == {"no_consent": 1}
    assert drill.sms_segments == reroute.sms_segments_planned == 3


def test_the_drill_command_explains_a_network_nobody_uses() -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    call_command("outage_drill", "tiktok", stdout=out)
    assert "nothing would change" in out.getvalue()
    with pytest.raises(CommandError, match="unknown network"):
        call_command("outage_drill", "myspace")


def test_a_window_reopened_after_fail_back_holds_the_released_posts_again() -> None:
    campaign = make_campaign(outage_policy=OutagePolicy.HOLD)
    window = network_down()
    campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=Recorder()
    )
    reroute_window_closed(window_id=window.pk)
    assert SocialPost.objects.get().status == PostStatus.PENDING
    again = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=Recorder()
    )
    assert again is not None
    assert again.status == RerouteStatus.HOLDING
    assert SocialPost.objects.get().status == PostStatus.HELD
    assert Reroute.objects.count() == 1


@NO_QUIET
def test_cancelling_a_rerouted_campaign_from_the_lifecycle_cancels_unsent_deliveries() -> None:
    from campaigns.lifecycle import campaign_cancel

    for _ in range(2):
        contact_with(Channel.EMAIL, push=False)
    campaign = make_campaign()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    plan_all(reroute.pk)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.REROUTED
    campaign_cancel(campaign=campaign)
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.CANCELLED}
    reroute.refresh_from_db()
    assert reroute.status == RerouteStatus.CANCELLED


def test_planning_that_stopped_moving_is_resumed_and_live_planning_is_left_alone() -> None:
    from campaigns.reroute import reroute_stalled_resume

    campaign = make_campaign()
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None
    recorder = Recorder()
    assert reroute_stalled_resume(now=timezone.now(), send=recorder) == 0
    later = timezone.now() + timedelta(minutes=5)
    assert reroute_stalled_resume(now=later, send=recorder) == 1
    assert recorder.calls == [("campaigns.reroute_plan", {"reroute_id": reroute.pk})]


def test_a_hold_reroutes_once_the_maximum_hold_since_the_due_time_has_passed() -> None:
    campaign = make_campaign(
        outage_policy=OutagePolicy.HOLD, max_hold_minutes=30, due_in_minutes=-20
    )
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=network_down().pk, send=Recorder()
    )
    assert reroute is not None and reroute.send_after is not None
    assert campaign.scheduled_at is not None
    assert reroute.send_after == campaign.scheduled_at + timedelta(minutes=30)
    recorder = Recorder()
    assert reroute_holds_check(now=timezone.now() + timedelta(minutes=5), send=recorder) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.db.transaction.on_commit", lambda fn, *a, **k: fn())
        assert reroute_holds_check(now=timezone.now() + timedelta(minutes=11), send=recorder) == 1


@NO_QUIET
def test_fail_back_with_cancel_keeps_what_another_open_outage_still_reroutes() -> None:
    for _ in range(3):
        contact_with(Channel.EMAIL, push=False)
    campaign = make_campaign(networks=("instagram", "facebook"), on_failback=FailbackChoice.CANCEL)
    instagram, facebook = network_down("instagram"), network_down("facebook")
    reroutes = [
        campaign_network_down(
            campaign_id=campaign.pk, network=window.network, window_id=window.pk, send=Recorder()
        )
        for window in (instagram, facebook)
    ]
    for reroute in reroutes:
        assert reroute is not None
        plan_all(reroute.pk)
    assert Delivery.objects.count() == 3  # one set for the campaign, whichever network is down

    assert reroute_window_closed(window_id=instagram.pk)["cancelled_deliveries"] == 0
    assert S.CANCELLED not in set(Delivery.objects.values_list("status", flat=True))

    assert reroute_window_closed(window_id=facebook.pk)["cancelled_deliveries"] == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.CANCELLED}
