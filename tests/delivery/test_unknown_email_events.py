"""An email row left `unknown` (its request may have left, the answer never came back) is settled
by the provider's own events for it, matched by the delivery id we send as a custom arg, and only
when the event's recipient is the row's address."""

from __future__ import annotations

import pytest

from contacts.models import Channel
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from delivery.status import StatusEvent, status_events_apply
from tests.contacts.factories import granted_contact
from tests.delivery.test_webhooks import make_message

pytestmark = pytest.mark.django_db


def _unknown_row(email: str) -> Delivery:
    contact = granted_contact(email=email)
    message = make_message()
    return Delivery.objects.create(
        workspace_id=message.workspace_id,
        message=message,
        contact=contact,
        channel=Channel.EMAIL,
        status=S.UNKNOWN,
    )


def _event(
    row: Delivery, *, recipient: str, status: str = "delivered", msg: str = "sg-1"
) -> StatusEvent:
    return StatusEvent(
        provider="sendgrid",
        message_id=msg,
        status=status,
        recipient=recipient,
        delivery_id=row.pk,
    )


def test_an_event_for_an_unknown_row_settles_it_and_the_next_events_match_by_message_id() -> None:
    row = _unknown_row("ada@example.com")
    result = status_events_apply(events=[_event(row, recipient="Ada@Example.com")])
    row.refresh_from_db()
    assert (result.matched, row.status, row.provider_message_id) == (1, S.DELIVERED, "sg-1")
    later = StatusEvent(provider="sendgrid", message_id="sg-1", status="opened")
    assert status_events_apply(events=[later]).matched == 1


def test_an_event_naming_a_row_whose_address_is_not_its_recipient_settles_nothing() -> None:
    row = _unknown_row("ada@example.com")
    result = status_events_apply(events=[_event(row, recipient="mallory@example.com")])
    row.refresh_from_db()
    assert (result.matched, row.status, row.provider_message_id) == (0, S.UNKNOWN, "")
    assert len(result.pending) == 1


def test_a_row_that_is_not_unknown_is_never_matched_by_its_id() -> None:
    row = _unknown_row("ada@example.com")
    Delivery.objects.filter(pk=row.pk).update(status=S.SENT, provider_message_id="sg-own")
    result = status_events_apply(events=[_event(row, recipient="ada@example.com", msg="sg-x")])
    row.refresh_from_db()
    assert (result.matched, row.status, row.provider_message_id) == (0, S.SENT, "sg-own")
