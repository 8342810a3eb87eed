"""Set-based planning: who gets what on which channel, and why the others do not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings

from contacts.consent import consent_grant, suppression_add
from contacts.models import Channel, ConsentSource, Contact, PushSubscription, SuppressionReason
from delivery.materialize import (
    ALL_CHANNELS,
    PlanSpec,
    deliveries_plan_slice,
    sms_only_count,
)
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from tests.contacts.factories import evidence, make_contact
from tests.delivery.test_dispatch import make_message

pytestmark = pytest.mark.django_db

ORDER = (Channel.PUSH, Channel.EMAIL, Channel.SMS)


def contact_with(
    *channels: str,
    email: bool = True,
    phone: bool = True,
    push: bool = True,
    tz: str = "UTC",
    **overrides: Any,
) -> Contact:
    contact = make_contact(email=None, phone=None, timezone=tz, **overrides)
    Contact.objects.filter(pk=contact.pk).update(
        email=f"c{contact.pk}@example.com" if email else None,
        phone=f"+4479460{contact.pk:05d}" if phone else None,
    )
    contact.refresh_from_db()
    if push:
        PushSubscription.objects.create(
            workspace_id=contact.workspace_id,
            contact=contact,
            endpoint=f"https://push.example/{contact.pk}",
            p256dh="key",
            auth="auth",
        )
    for channel in channels:
        consent_grant(contact=contact, channel=channel, purpose="marketing", evidence=evidence())
    return contact


def plan(spec: PlanSpec, **kwargs: Any) -> dict[int, set[str]]:
    result = deliveries_plan_slice(
        spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=1000, **kwargs
    )
    chosen: dict[int, set[str]] = {}
    for contact_id, channel in Delivery.objects.values_list("contact_id", "channel"):
        chosen.setdefault(contact_id, set()).add(channel)
    plan.last = result  # type: ignore[attr-defined]
    return chosen


@override_settings(REROUTE_QUIET_HOURS={})
def test_first_reachable_picks_each_contacts_first_consented_reachable_channel() -> None:
    message = make_message()
    push_and_email = contact_with(Channel.PUSH, Channel.EMAIL)
    email_only = contact_with(Channel.EMAIL, push=False)
    sms_no_phone = contact_with(Channel.SMS, phone=False)
    nothing = contact_with()
    bounced = contact_with(Channel.EMAIL)
    suppression_add(
        contact=bounced,
        channel=Channel.EMAIL,
        reason=SuppressionReason.HARD_BOUNCE,
        source=ConsentSource.BOUNCE,
    )
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=ORDER,
    )
    chosen = plan(spec)
    assert chosen == {push_and_email.pk: {"push"}, email_only.pk: {"email"}}
    result = plan.last  # type: ignore[attr-defined]
    assert result.planned == {"push": 1, "email": 1}
    assert result.exclusions == {"unreachable": 1, "no_consent": 1, "suppressed": 1}
    assert result.contacts == 5
    del sms_no_phone, nothing


@override_settings(REROUTE_QUIET_HOURS={})
def test_all_mode_plans_every_eligible_channel_and_replanning_adds_nothing() -> None:
    message = make_message()
    contact = contact_with(Channel.PUSH, Channel.EMAIL, Channel.SMS)
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=ORDER,
        mode=ALL_CHANNELS,
    )
    assert plan(spec) == {contact.pk: {"push", "email", "sms"}}
    plan(spec)
    assert Delivery.objects.count() == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.PLANNED}


@override_settings(REROUTE_QUIET_HOURS={})
def test_the_sms_budget_goes_first_to_contacts_with_no_other_channel() -> None:
    message = make_message()
    with_email = [contact_with(Channel.SMS, Channel.EMAIL, push=False) for _ in range(3)]
    sms_only = [contact_with(Channel.SMS, email=False, push=False) for _ in range(2)]
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.SMS, Channel.EMAIL),
    )
    assert sms_only_count(spec=spec, audience=Contact.objects.all(), limit=2) == 2
    # A budget of 3 SMS: both SMS-only contacts, then one of the others; the rest fall through
    # to email, their next channel.
    chosen = plan(spec, sms_allowance=(2, 1))
    assert all(chosen[c.pk] == {"sms"} for c in sms_only)
    channels = sorted(next(iter(chosen[c.pk])) for c in with_email)
    assert channels == ["email", "email", "sms"]


@override_settings(REROUTE_QUIET_HOURS={})
def test_the_sms_only_count_leaves_out_contacts_already_reached_and_walks_every_slice() -> None:
    message = make_message()
    sms_only = [contact_with(Channel.SMS, email=False, push=False) for _ in range(3)]
    contact_with(Channel.SMS, Channel.EMAIL, push=False)
    contact_with(Channel.SMS, phone=False, push=False)
    Delivery.objects.create(
        workspace_id=message.workspace_id,
        message=message,
        contact=sms_only[1],
        channel="whatsapp",
        status=S.SENT,
    )
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.EMAIL, Channel.SMS),
        frequency_cap=1,
        skip_reached_on="whatsapp",
    )
    for limit in (1, 2, 100):
        assert sms_only_count(spec=spec, audience=Contact.objects.all(), limit=limit) == 2
    email_only = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.EMAIL,),
    )
    assert sms_only_count(spec=email_only, audience=Contact.objects.all(), limit=100) == 0


@override_settings(REROUTE_QUIET_HOURS={})
def test_sms_only_contacts_over_the_budget_are_excluded_with_that_reason() -> None:
    message = make_message()
    for _ in range(3):
        contact_with(Channel.SMS, email=False, push=False)
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.SMS,),
    )
    plan(spec, sms_allowance=(1, 0))
    result = plan.last  # type: ignore[attr-defined]
    assert result.planned == {"sms": 1}
    assert result.exclusions == {"over_sms_budget": 2}


@override_settings(REROUTE_QUIET_HOURS={})
def test_the_frequency_cap_leaves_out_contacts_already_messaged_today() -> None:
    busy, calm = (contact_with(Channel.EMAIL) for _ in range(2))
    for n in range(2):
        Delivery.objects.create(
            workspace_id=busy.workspace_id,
            message=make_message(name=f"earlier {n}"),
            contact=busy,
            channel="email",
        )
    message = make_message()
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.EMAIL,),
        frequency_cap=2,
    )
    deliveries_plan_slice(spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=100)
    planned = set(Delivery.objects.filter(message=message).values_list("contact_id", flat=True))
    assert planned == {calm.pk}


@override_settings(REROUTE_QUIET_HOURS={"sms": "21:00-08:00"})
def test_quiet_hours_delay_sms_to_the_contacts_morning_instead_of_dropping_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.utils import timezone

    # 23:30 UTC is 08:30 in Tokyo (not quiet) and 23:30 in London (quiet until 08:00).
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 24, 23, 30, tzinfo=UTC))
    london = contact_with(Channel.SMS, email=False, push=False, tz="Europe/London")
    tokyo = contact_with(Channel.SMS, email=False, push=False, tz="Asia/Tokyo")
    message = make_message()
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.SMS,),
    )
    result = deliveries_plan_slice(
        spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=100
    )
    rows = dict(Delivery.objects.values_list("contact_id", "not_before"))
    assert rows[tokyo.pk] is None
    assert rows[london.pk] == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert result.delayed_quiet_hours == 1


@override_settings(REROUTE_QUIET_HOURS={})
def test_whatsapp_contacts_already_reached_are_not_messaged_again() -> None:
    message = make_message()
    reached, failed = (contact_with(Channel.EMAIL) for _ in range(2))
    Delivery.objects.create(
        workspace_id=message.workspace_id,
        message=message,
        contact=reached,
        channel="whatsapp",
        status=S.DELIVERED,
    )
    Delivery.objects.create(
        workspace_id=message.workspace_id,
        message=message,
        contact=failed,
        channel="whatsapp",
        status=S.FAILED,
    )
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.EMAIL,),
        skip_reached_on="whatsapp",
    )
    deliveries_plan_slice(spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=10)
    emailed = set(Delivery.objects.filter(channel="email").values_list("contact_id", flat=True))
    assert emailed == {failed.pk}


@override_settings(REROUTE_QUIET_HOURS={})
def test_a_drill_counts_without_writing_and_slices_walk_the_audience_in_id_order() -> None:
    message = make_message()
    contacts = [contact_with(Channel.EMAIL) for _ in range(5)]
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=(Channel.EMAIL,),
    )
    drill = deliveries_plan_slice(
        spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=100, write=False
    )
    assert drill.planned == {"email": 5}
    assert Delivery.objects.count() == 0
    first = deliveries_plan_slice(
        spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=2
    )
    assert first.last_contact_id == contacts[1].pk
    second = deliveries_plan_slice(
        spec=spec,
        audience=Contact.objects.all(),
        after_contact_id=first.last_contact_id,
        limit=2,
    )
    assert second.last_contact_id == contacts[3].pk
    assert Delivery.objects.count() == 4


MORNING = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # 08:00 in London and in UTC, that night
# Per (mode, SMS allowance per slice): each contact's planned channels; SMS rows held for quiet
# hours; the SMS deliveries to contacts with another channel and to those with SMS alone; the
# exclusions besides the six contacts who are always left out (see below).
PLANS: dict[tuple[str, tuple[int, int] | None], Any] = {
    ("first_reachable", None): (
        {"a": {"push"}, "b": {"email"}, "c1": {"sms"}, "c2": {"sms"}, "c3": {"sms"}},
        {"c1", "c3"},
        (0, 3),
        {},
    ),
    (ALL_CHANNELS, None): (
        {
            "a": {"push", "email", "sms"},
            "b": {"email", "sms"},
            "c1": {"sms"},
            "c2": {"sms"},
            "c3": {"sms"},
        },
        {"a", "c1", "c3"},
        (2, 3),
        {},
    ),
    # Slices of 3 and one SMS a slice for each group: a (the first with another channel) and
    # c1 in the first slice, c2 in the second; c3 comes after c2 and is over the budget.
    ("first_reachable", (1, 1)): (
        {"a": {"push"}, "b": {"email"}, "c1": {"sms"}, "c2": {"sms"}},
        {"c1"},
        (0, 2),
        {"over_sms_budget": 1},
    ),
    (ALL_CHANNELS, (1, 1)): (
        {"a": {"push", "email", "sms"}, "b": {"email"}, "c1": {"sms"}, "c2": {"sms"}},
        {"a", "c1"},
        (1, 2),
        {"over_sms_budget": 1},
    ),
}


@override_settings(REROUTE_QUIET_HOURS={"sms": "21:00-08:00"}, REROUTE_DEFAULT_TIMEZONE="UTC")
@pytest.mark.parametrize(("mode", "allowance"), list(PLANS))
@pytest.mark.parametrize("plain_audience", [True, False])
def test_every_rule_together_plans_exactly_the_expected_rows_slice_by_slice(
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    allowance: tuple[int, int] | None,
    plain_audience: bool,
) -> None:
    from django.utils import timezone

    # 23:30 UTC: SMS is quiet in London and in UTC (the default zone), not in Tokyo.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 24, 23, 30, tzinfo=UTC))
    message = make_message()
    people = {
        "a": contact_with(Channel.PUSH, Channel.EMAIL, Channel.SMS, tz="Europe/London"),
        "b": contact_with(Channel.EMAIL, Channel.SMS, push=False, tz="Asia/Tokyo"),
        "c1": contact_with(Channel.SMS, email=False, push=False, tz="Europe/London"),
        "c2": contact_with(Channel.SMS, email=False, push=False, tz="Asia/Tokyo"),
        "c3": contact_with(Channel.SMS, email=False, push=False, tz=""),
        "unreachable": contact_with(Channel.SMS, phone=False, push=False),
        "no_consent": contact_with(),
        "bounced": contact_with(Channel.EMAIL, push=False),
        "erased": contact_with(Channel.EMAIL),
        "busy": contact_with(Channel.EMAIL),
        "reached": contact_with(Channel.EMAIL, Channel.SMS),
    }
    suppression_add(
        contact=people["bounced"],
        channel=Channel.EMAIL,
        reason=SuppressionReason.HARD_BOUNCE,
        source=ConsentSource.BOUNCE,
    )
    Contact.objects.filter(pk=people["erased"].pk).update(erased_at=timezone.now(), sendable=0)
    for n in range(2):
        Delivery.objects.create(
            workspace_id=message.workspace_id,
            message=make_message(name=f"earlier {n}"),
            contact=people["busy"],
        )
    Delivery.objects.create(
        workspace_id=message.workspace_id,
        message=message,
        contact=people["reached"],
        channel="whatsapp",
        status=S.DELIVERED,
    )
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=message.workspace_id,
        purpose="marketing",
        channels=ORDER,
        mode=mode,
        frequency_cap=2,
        skip_reached_on="whatsapp",
        sms_cost_units=2,
    )
    audience = Contact.objects.all()
    if not plain_audience:
        # A join and DISTINCT: the slice is matched by id instead of borrowing the WHERE.
        audience = audience.filter(pk__in=Contact.objects.values("pk")).distinct()

    slices, after = [], 0
    while True:
        result = deliveries_plan_slice(
            spec=spec, audience=audience, after_contact_id=after, limit=3, sms_allowance=allowance
        )
        if not result.contacts:
            break
        slices.append(result)
        after = result.last_contact_id

    channels, held, (sms_alt, sms_only), more_exclusions = PLANS[(mode, allowance)]
    label = {contact.pk: name for name, contact in people.items()}
    rows = Delivery.objects.filter(message=message, status=S.PLANNED)
    planned: dict[str, set[str]] = {}
    for contact_id, channel, cost, not_before in rows.values_list(
        "contact_id", "channel", "cost_units", "not_before"
    ):
        planned.setdefault(label[contact_id], set()).add(channel)
        assert cost == (2 if channel == Channel.SMS else 1)
        held_here = channel == Channel.SMS and label[contact_id] in held
        assert not_before == (MORNING if held_here else None), (label[contact_id], channel)
    assert planned == channels
    assert [(r.contacts, r.last_contact_id) for r in slices] == [
        (3, people["c1"].pk),
        (3, people["unreachable"].pk),
        (3, people["erased"].pk),
        (2, people["reached"].pk),
    ]
    totals: dict[str, int] = {}
    for result in slices:
        for channel, count in result.planned.items():
            totals[channel] = totals.get(channel, 0) + count
    expected_totals: dict[str, int] = {}
    for chs in channels.values():
        for channel in chs:
            expected_totals[channel] = expected_totals.get(channel, 0) + 1
    assert totals == expected_totals
    assert sum(r.delayed_quiet_hours for r in slices) == len(held)
    assert sum(r.sms_alt_planned for r in slices) == sms_alt
    assert sum(r.sms_only_planned for r in slices) == sms_only
    excluded: dict[str, int] = {}
    for result in slices:
        for reason, count in result.exclusions.items():
            excluded[reason] = excluded.get(reason, 0) + count
    assert excluded == {
        "unreachable": 1,
        "no_consent": 1,
        "suppressed": 2,  # the bounced and the erased contact
        "frequency_cap": 1,
        "already_reached": 1,
        **more_exclusions,
    }
