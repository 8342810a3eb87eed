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
    *channels: str, email: bool = True, phone: bool = True, push: bool = True, tz: str = "UTC"
) -> Contact:
    contact = make_contact(email=None, phone=None, timezone=tz)
    Contact.objects.filter(pk=contact.pk).update(
        email=f"c{contact.pk}@example.com" if email else None,
        phone=f"+4479460{contact.pk:05d}" if phone else None,
    )
    contact.refresh_from_db()
    if push:
        PushSubscription.objects.create(
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
    spec = PlanSpec(message_id=message.pk, purpose="marketing", channels=ORDER)
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
    spec = PlanSpec(message_id=message.pk, purpose="marketing", channels=ORDER, mode=ALL_CHANNELS)
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
        message_id=message.pk, purpose="marketing", channels=(Channel.SMS, Channel.EMAIL)
    )
    assert sms_only_count(spec=spec, audience=Contact.objects.all(), limit=2) == 2
    # A budget of 3 SMS: both SMS-only contacts, then one of the others; the rest fall through
    # to email, their next channel.
    chosen = plan(spec, sms_allowance=(2, 1))
    assert all(chosen[c.pk] == {"sms"} for c in sms_only)
    channels = sorted(next(iter(chosen[c.pk])) for c in with_email)
    assert channels == ["email", "email", "sms"]


@override_settings(REROUTE_QUIET_HOURS={})
def test_sms_only_contacts_over_the_budget_are_excluded_with_that_reason() -> None:
    message = make_message()
    for _ in range(3):
        contact_with(Channel.SMS, email=False, push=False)
    spec = PlanSpec(message_id=message.pk, purpose="marketing", channels=(Channel.SMS,))
    plan(spec, sms_allowance=(1, 0))
    result = plan.last  # type: ignore[attr-defined]
    assert result.planned == {"sms": 1}
    assert result.exclusions == {"over_sms_budget": 2}


@override_settings(REROUTE_QUIET_HOURS={})
def test_the_frequency_cap_leaves_out_contacts_already_messaged_today() -> None:
    busy, calm = (contact_with(Channel.EMAIL) for _ in range(2))
    for n in range(2):
        Delivery.objects.create(
            message=make_message(name=f"earlier {n}"), contact=busy, channel="email"
        )
    message = make_message()
    spec = PlanSpec(
        message_id=message.pk, purpose="marketing", channels=(Channel.EMAIL,), frequency_cap=2
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
    spec = PlanSpec(message_id=message.pk, purpose="marketing", channels=(Channel.SMS,))
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
        message=message, contact=reached, channel="whatsapp", status=S.DELIVERED
    )
    Delivery.objects.create(message=message, contact=failed, channel="whatsapp", status=S.FAILED)
    spec = PlanSpec(
        message_id=message.pk,
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
    spec = PlanSpec(message_id=message.pk, purpose="marketing", channels=(Channel.EMAIL,))
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


def _plan_everything(
    plan_slice: Any, spec: PlanSpec, audience: Any, allowance: tuple[int, int] | None
) -> tuple[list[Any], set[tuple[Any, ...]]]:
    """Walk the audience in slices of 3 with one of the two ways, inside a transaction that is
    rolled back: every slice's result, and the delivery rows written."""
    from django.db import transaction
    from django.utils import timezone

    results, after = [], 0
    with transaction.atomic():
        while True:
            result = plan_slice(
                spec=spec,
                audience=audience,
                after_id=after,
                limit=3,
                allowance=allowance,
                write=True,
                now=timezone.now(),
            )
            if not result.contacts:
                break
            results.append(result)
            after = result.last_contact_id
        rows = set(
            Delivery.objects.filter(message_id=spec.message_id).values_list(
                "contact_id", "channel", "status", "cost_units", "not_before"
            )
        )
        transaction.set_rollback(True)
    return results, rows


@override_settings(REROUTE_QUIET_HOURS={"sms": "21:00-08:00"})
@pytest.mark.parametrize("mode", ["first_reachable", ALL_CHANNELS])
@pytest.mark.parametrize("allowance", [None, (1, 1)])
@pytest.mark.parametrize("plain_audience", [True, False])
def test_the_one_statement_on_postgresql_plans_exactly_what_the_portable_statements_do(
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    allowance: tuple[int, int] | None,
    plain_audience: bool,
) -> None:
    from django.utils import timezone

    from delivery.materialize import _plan_slice_portable, _plan_slice_postgresql

    # 23:30 UTC: SMS is quiet in London, not in Tokyo.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 24, 23, 30, tzinfo=UTC))
    message = make_message()
    contact_with(Channel.PUSH, Channel.EMAIL, Channel.SMS, tz="Europe/London")
    contact_with(Channel.EMAIL, Channel.SMS, push=False, tz="Asia/Tokyo")
    for tz in ("Europe/London", "Asia/Tokyo", ""):
        contact_with(Channel.SMS, email=False, push=False, tz=tz)
    contact_with(Channel.SMS, phone=False, push=False)  # unreachable
    contact_with()  # no consent
    bounced = contact_with(Channel.EMAIL, push=False)
    suppression_add(
        contact=bounced,
        channel=Channel.EMAIL,
        reason=SuppressionReason.HARD_BOUNCE,
        source=ConsentSource.BOUNCE,
    )
    erased = contact_with(Channel.EMAIL)
    Contact.objects.filter(pk=erased.pk).update(erased_at=timezone.now(), sendable=0)
    busy = contact_with(Channel.EMAIL)
    for n in range(2):
        Delivery.objects.create(message=make_message(name=f"earlier {n}"), contact=busy)
    reached = contact_with(Channel.EMAIL, Channel.SMS)
    Delivery.objects.create(
        message=message, contact=reached, channel="whatsapp", status=S.DELIVERED
    )
    spec = PlanSpec(
        message_id=message.pk,
        purpose="marketing",
        channels=ORDER,
        mode=mode,
        frequency_cap=2,
        skip_reached_on="whatsapp",
        sms_cost_units=2,
    )
    audience = Contact.objects.all()
    if not plain_audience:
        audience = audience.filter(pk__in=Contact.objects.values("pk")).distinct()

    portable = _plan_everything(_plan_slice_portable, spec, audience, allowance)
    one_statement = _plan_everything(_plan_slice_postgresql, spec, audience, allowance)

    assert one_statement == portable
    results, rows = portable
    excluded: dict[str, int] = {}
    for result in results:
        for reason, count in result.exclusions.items():
            excluded[reason] = excluded.get(reason, 0) + count
    # Every reason shows up, so the comparison above covers each branch.
    expected = {"no_consent", "suppressed", "unreachable", "frequency_cap", "already_reached"}
    assert expected <= set(excluded)
    assert any(row[4] is not None for row in rows)  # a delivery held for quiet hours
    if allowance:
        assert excluded.get("over_sms_budget")
