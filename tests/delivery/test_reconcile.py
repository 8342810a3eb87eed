"""Unknown SMS reconciled with Twilio's Messages list (delivery/reconcile.py), against the Twilio
fake on loopback: found, never left, not listed yet, Twilio down, slow or throttling."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests
from django.test import override_settings
from django.utils import timezone

from contacts.models import Channel
from delivery.models import Delivery, DeliveryEvent, Message
from delivery.reconcile import (
    NEVER_LEFT,
    NOTE_PREFIX,
    UNRECONCILED,
    never_left_from,
    sms_unknown_reconcile,
)
from delivery.states import DeliveryStatus as S
from delivery.sweeper import WORKER_LOST, deliveries_sweep
from sandbox.twilio import TwilioFake
from tests.contacts.factories import granted_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db

_phones = itertools.count(1)
ACCOUNT = "AC" + "5" * 32
TOKEN = "reconcile-token"


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    server = TwilioFake(account_sid=ACCOUNT, auth_token=TOKEN, send_callbacks=False).start()
    # The rule's three parts kept short: "never left" is concluded 6 s after the unknown.
    rule = override_settings(
        TWILIO_API_BASE_URL=server.url,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_TIMEOUT_S=2.0,
        DELIVERY_SMS_LEAVE_MAX_S=1.0,
        DELIVERY_SMS_RECONCILE_LAG_S=3.0,
        DELIVERY_SMS_RECONCILE_SKEW_S=5.0,
        DELIVERY_SMS_RECONCILE_MAX_TRIES=3,
    )
    with rule:
        yield server
    server.stop()


def _unknown(count: int = 1, *, text: str = "Hi {{ first_name }}", ago_s: float = 0.0) -> list[int]:
    """SMS rows whose attempt started and became unknown `ago_s` seconds ago (a lost worker)."""
    message = Message.objects.create(workspace=workspace_for_tests(), name="r", sms_text=text)
    at = timezone.now() - timedelta(seconds=ago_s)
    rows = []
    for _ in range(count):
        contact = granted_contact(
            channel=Channel.SMS, phone=f"+4477008{next(_phones):05d}", first_name="Ada"
        )
        rows.append(
            Delivery(
                workspace_id=message.workspace_id,
                message=message,
                contact=contact,
                channel="sms",
                status=S.UNKNOWN,
                attempt=1,
                sending_at=at - timedelta(seconds=1),
                failed_at=at,
                error_code=WORKER_LOST,
                error_text="may have left",
            )
        )
    return [d.pk for d in Delivery.objects.bulk_create(rows)]


def _phone(delivery_id: int) -> str:
    return str(Delivery.objects.get(pk=delivery_id).contact.phone)


def _twilio_post(fake: TwilioFake, *, to: str, body: str) -> str:
    """A message Twilio accepted, as a worker's create would have left it."""
    response = requests.post(
        f"{fake.url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        data={"To": to, "Body": body, "From": "+15005550006"},
        auth=(ACCOUNT, TOKEN),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["sid"])


def _later(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def _row(delivery_id: int) -> Delivery:
    return Delivery.objects.get(pk=delivery_id)


def _notes(delivery_id: int) -> list[str]:
    return list(
        DeliveryEvent.objects.filter(
            delivery_id=delivery_id, detail__startswith=NOTE_PREFIX
        ).values_list("detail", flat=True)
    )


def test_a_message_twilio_lists_becomes_sent_with_its_sid_and_listed_status(
    fake: TwilioFake,
) -> None:
    [row_id] = _unknown(ago_s=4)
    sid = _twilio_post(fake, to=_phone(row_id), body="Hi Ada")

    report = sms_unknown_reconcile()

    assert report.sent == 1
    assert report.requeued_ids == []
    row = _row(row_id)
    assert row.provider_message_id == sid
    assert row.provider == "twilio"
    assert row.error_code == ""
    # The fake lists it delivered (the callback that said so matched nothing back then).
    assert row.status == S.DELIVERED
    assert fake.accepted == 1


def test_nothing_listed_once_the_request_surely_cannot_appear_goes_back_to_the_queue(
    fake: TwilioFake,
) -> None:
    [row_id] = _unknown(ago_s=4)
    # Another number's message, and one of ours from before this attempt: neither is the row's.
    _twilio_post(fake, to="+447700999999", body="Hi Ada")
    unknown_at = _row(row_id).failed_at
    assert unknown_at is not None

    report = sms_unknown_reconcile(now=never_left_from(unknown_at) + timedelta(seconds=1))

    assert report.requeued_ids == [row_id]
    row = _row(row_id)
    assert row.status == S.QUEUED
    assert row.error_code == NEVER_LEFT
    assert row.claim_id is None
    assert row.attempt == 1  # kept: a provider failing this way uses the attempts up
    assert fake.accepted == 1  # the reconciler sends nothing itself


def test_not_listed_yet_is_no_proof_before_the_safe_delay(fake: TwilioFake) -> None:
    """A request that left but that Twilio has not listed yet (its list lags): the row waits
    instead of being sent again, and the message is found once it shows."""
    fake.list_lag_s = 2.5
    [row_id] = _unknown(ago_s=3.5)
    sid = _twilio_post(fake, to=_phone(row_id), body="Hi Ada")

    early = sms_unknown_reconcile()

    assert early.waiting == 1 and early.requeued_ids == []
    row = _row(row_id)
    assert row.status == S.UNKNOWN
    assert row.failed_at is not None
    assert row.not_before == never_left_from(row.failed_at)
    assert not _notes(row_id)  # waiting is not a failed try

    # Once Twilio lists it, the next look finds it: nothing was sent twice.
    time.sleep(2.6)
    found = sms_unknown_reconcile(now=_later(10))
    assert found.sent == 1
    assert _row(row_id).provider_message_id == sid
    assert fake.accepted == 1


def test_a_message_still_in_twilios_queue_is_found_though_a_dated_lookup_misses_it(
    fake: TwilioFake,
) -> None:
    fake.queue_hold_s = 3600  # no date_sent for an hour: DateSent filters leave it out
    [row_id] = _unknown(ago_s=4)
    sid = _twilio_post(fake, to=_phone(row_id), body="Hi Ada")
    unknown_at = _row(row_id).failed_at
    assert unknown_at is not None

    report = sms_unknown_reconcile(now=never_left_from(unknown_at) + timedelta(seconds=1))

    assert report.sent == 1 and report.requeued_ids == []
    row = _row(row_id)
    assert (row.status, row.provider_message_id) == (S.SENT, sid)
    # The dated lookup first, then the undated one.
    assert fake.list_requests == 2


def test_twilio_down_leaves_the_row_unknown_and_asks_again_later_a_bounded_number_of_times(
    fake: TwilioFake,
) -> None:
    first, second = _unknown(2, ago_s=4)
    fake.set_fault(mode="refuse")

    report = sms_unknown_reconcile(now=_later(60))

    assert report.inconclusive == 1 and report.waiting == 1  # the second was not even asked
    row = _row(first)
    assert row.status == S.UNKNOWN
    assert row.not_before is not None and row.not_before > timezone.now()
    assert len(_notes(first)) == 1 and not _notes(second)

    for _ in range(2):
        Delivery.objects.filter(pk=first).update(not_before=None)
        sms_unknown_reconcile(now=_later(60))
    row = _row(first)
    assert (row.status, row.error_code) == (S.UNKNOWN, UNRECONCILED)
    assert "gave up after 3 lookups" in _notes(first)[-1]
    # Given up for good: later sweeps leave it alone.
    Delivery.objects.filter(pk=first).update(not_before=None)
    fake.clear_fault()
    assert sms_unknown_reconcile(now=_later(60)).sent == 0
    assert _row(first).error_code == UNRECONCILED


def test_twilio_answering_slower_than_the_timeout_counts_as_no_answer(fake: TwilioFake) -> None:
    [row_id] = _unknown(ago_s=4)
    fake.set_fault(mode="slow", delay_s=3.0)

    with override_settings(TWILIO_TIMEOUT_S=0.5):
        report = sms_unknown_reconcile(now=_later(60))

    assert report.inconclusive == 1
    assert _row(row_id).status == S.UNKNOWN
    assert "no answer" in _notes(row_id)[0]


def test_a_429_waits_at_least_what_twilio_asked_and_spares_the_other_rows(fake: TwilioFake) -> None:
    first, _second = _unknown(2, ago_s=4)
    fake.set_fault(mode="rate_limit", retry_after_s=600)

    report = sms_unknown_reconcile(now=_later(60))

    assert report.inconclusive == 1 and report.waiting == 1
    assert fake.list_requests == 0  # a fault answers before the route: nothing was listed
    row = _row(first)
    assert row.status == S.UNKNOWN
    assert row.not_before is not None
    assert row.not_before >= _later(60) + timedelta(seconds=590)
    assert "throttled" in _notes(first)[0]


def test_another_text_to_the_number_in_the_window_is_neither_claimed_nor_taken_as_absence(
    fake: TwilioFake,
) -> None:
    [row_id] = _unknown(ago_s=4)
    _twilio_post(fake, to=_phone(row_id), body="Something else entirely")
    unknown_at = _row(row_id).failed_at
    assert unknown_at is not None

    report = sms_unknown_reconcile(now=never_left_from(unknown_at) + timedelta(seconds=1))

    assert report.inconclusive == 1 and report.requeued_ids == []
    assert _row(row_id).status == S.UNKNOWN
    assert "none matching" in _notes(row_id)[0]


def test_a_sid_another_row_already_holds_is_not_claimed_twice(fake: TwilioFake) -> None:
    [first] = _unknown(ago_s=4)
    [second] = _unknown(ago_s=4)  # another message with the same text, to the same contact
    Delivery.objects.filter(pk=second).update(contact_id=_row(first).contact_id)
    sid = _twilio_post(fake, to=_phone(first), body="Hi Ada")
    Delivery.objects.filter(pk=first).update(status=S.SENT, provider_message_id=sid)
    unknown_at = _row(second).failed_at
    assert unknown_at is not None

    report = sms_unknown_reconcile(now=never_left_from(unknown_at) + timedelta(seconds=1))

    assert report.requeued_ids == [second]
    assert _row(second).provider_message_id == ""


def test_paging_reads_every_page_of_a_number_texted_often(fake: TwilioFake) -> None:
    [row_id] = _unknown(ago_s=4)
    phone = _phone(row_id)
    sid = _twilio_post(fake, to=phone, body="Hi Ada")
    for n in range(230):
        _twilio_post(fake, to=phone, body=f"older {n}")
    # The others are newer than ours; pretend they are from a minute before the attempt instead
    # (outside its window), so ours is on the third page of the newest-first list.
    with fake._lock:
        for message in fake.messages:
            if message.sid != sid:
                message.created_at -= 60

    report = sms_unknown_reconcile(now=_later(60))

    assert report.sent == 1
    assert _row(row_id).provider_message_id == sid
    assert fake.list_requests == 3


def test_the_sweeper_hands_due_rows_to_the_sms_queue_whose_task_reconciles_them_first(
    fake: TwilioFake,
) -> None:
    [row_id] = _unknown(ago_s=30)  # past the safe delay by the real clock
    handed: list[tuple[str, list[int]]] = []

    def sweep() -> dict[str, int]:
        return deliveries_sweep(send=lambda channel, ids: handed.append((channel, ids)))

    assert sweep()["requeued"] == 1
    assert handed == [("sms", [row_id])]
    assert fake.list_requests == 0  # the sweeper itself never calls Twilio
    assert _row(row_id).status == S.UNKNOWN
    # Leased: the next sweeps leave it to the task they handed it to.
    sweep()
    assert handed == [("sms", [row_id])]

    # The chunk task (delivery/tasks.py) looks the rows up before it claims.
    from delivery.tasks import _sms_unknown_reconcile

    _sms_unknown_reconcile([row_id])
    assert _row(row_id).status == S.QUEUED
    assert fake.list_requests == 2


def test_a_fresh_unknown_row_is_not_looked_up_before_its_request_could_have_arrived(
    fake: TwilioFake,
) -> None:
    [row_id] = _unknown(ago_s=0)

    report = sms_unknown_reconcile()

    assert report.as_dict() == dict.fromkeys(report.as_dict(), 0)
    assert fake.list_requests == 0
    assert _row(row_id).status == S.UNKNOWN


class _StallingPace:
    """A pace whose commit makes the sender wait once, as a starved or frozen process would."""

    rate_per_s = 1000.0

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s

    def reserve(self, *, max_wait_s: float) -> float | None:
        return 0.0

    def commit(self) -> float:
        stall, self.stall_s = self.stall_s, 0.0
        return stall


def test_the_sender_never_starts_a_request_later_than_the_leave_bound_the_rule_counts_on(
    fake: TwilioFake,
) -> None:
    """What makes "not listed long enough after the claim's death" mean "never left": a request
    held up between its leaving record and the wire is not made at all."""
    from delivery.providers.base import Deferred, OutboundMessage, Sent, SmsContent
    from delivery.providers.twilio_sms import LEAVE_WINDOW_PASSED, TwilioSmsSender, twilio_client

    def sender(stall_s: float) -> TwilioSmsSender:
        client = twilio_client(account_sid=ACCOUNT, auth_token=TOKEN, base_url=fake.url)
        return TwilioSmsSender(
            client=client, limiter=_StallingPace(stall_s), status_callback_url="",
            messaging_service_sid="MG" + "0" * 32,
        )  # fmt: skip

    message = [OutboundMessage(delivery_id=1, to="+447700900001", merge_fields={})]
    with override_settings(DELIVERY_SMS_LEAVE_MAX_S=0.2):
        [late] = sender(0.5).send_batch(content=SmsContent(text="Hi"), messages=message)
        assert isinstance(late, Deferred) and late.code == LEAVE_WINDOW_PASSED
        assert fake.accepted == 0
        [on_time] = sender(0.05).send_batch(content=SmsContent(text="Hi"), messages=message)
    assert isinstance(on_time, Sent)
    assert fake.accepted == 1
