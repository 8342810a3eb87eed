"""Quiet hours hold at send time: at the claim, inside a paced SMS chunk, and until the sweeper.

Time is never frozen: windows are computed from the real clock (UTC contacts, or fixed-offset
zones such as Etc/GMT-12, whose local time is UTC+12), so the claim's SQL, the sender and the
sweeper all see the same "now".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Channel, Contact
from delivery.claim import deliveries_claim
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery, DeliveryEvent, Message
from delivery.providers.base import Deferred, OutboundMessage, Sent, SmsContent
from delivery.providers.twilio_sms import TwilioSmsSender, twilio_client
from delivery.quiet_hours import (
    QUIET_HOURS_CODE,
    quiet_hours_ends,
    quiet_hours_starts,
)
from delivery.ratelimit import RedisTokenBucket
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from sandbox.twilio import TwilioFake
from tests.delivery.test_dispatch import enqueue_now, make_message, plan
from tests.delivery.test_materialize import contact_with
from tests.harness import eventually

pytestmark = pytest.mark.django_db


def _sender(fake: TwilioFake, *, limiter: Any, max_wait_s: float = 60.0) -> TwilioSmsSender:
    """The real Twilio sender, talking to the loopback fake."""
    client = twilio_client(
        account_sid=fake.account_sid, auth_token=fake.auth_token, base_url=fake.url, timeout_s=5
    )
    return TwilioSmsSender(
        client=client, limiter=limiter, status_callback_url="", max_wait_s=max_wait_s
    )


MESSAGES = "/2010-04-01/Accounts/.*/Messages.json"


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def window(start: datetime, end: datetime) -> str:
    """A quiet-hours setting for contacts on UTC, to the second."""
    return f"{clock(start)}-{clock(end)}"


def sms_contact(tz: str) -> Contact:
    return contact_with(Channel.SMS, email=False, push=False, tz=tz)


def recipients(fake: TwilioFake) -> list[str]:
    return [dict(parse_qsl(r.body.decode()))["To"] for r in fake.requests_to(MESSAGES)]


def whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def statuses(ids: list[int]) -> dict[int, tuple[str, datetime | None, int, str]]:
    return {
        row[0]: row[1:]
        for row in Delivery.objects.filter(pk__in=ids).values_list(
            "pk", "status", "not_before", "attempt", "error_code"
        )
    }


def test_the_window_module_answers_per_zone_with_the_default_for_empty_or_unknown_names(
    settings: Any,
) -> None:
    settings.REROUTE_QUIET_HOURS = {"sms": "21:00-08:00"}
    settings.REROUTE_DEFAULT_TIMEZONE = "Asia/Tokyo"
    at = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # 08:30 in Tokyo, 23:30 in London
    ends = quiet_hours_ends(channel="sms", tzs=["Europe/London", "", "Nope/Zone"], now=at)
    assert ends == {"Europe/London": datetime(2026, 11, 25, 8, 0, tzinfo=UTC)}
    starts = quiet_hours_starts(channel="sms", tzs=["Europe/London", ""], now=at)
    assert starts == {"Europe/London": at, "": datetime(2026, 11, 25, 12, 0, tzinfo=UTC)}
    assert quiet_hours_ends(channel="email", tzs=["Europe/London"], now=at) == {}


def test_a_claim_takes_only_contacts_outside_quiet_hours_and_holds_the_others_to_their_window_end(
    settings: Any,
) -> None:
    now = timezone.now()
    start, end = whole_seconds(now - timedelta(hours=1)), whole_seconds(now + timedelta(hours=1))
    settings.REROUTE_QUIET_HOURS = {"sms": window(start, end)}
    settings.REROUTE_DEFAULT_TIMEZONE = "UTC"
    utc, behind = sms_contact("UTC"), sms_contact("Etc/GMT+1")  # local: now, now - 1 h
    ahead, far = sms_contact("Etc/GMT-12"), sms_contact("Asia/Kathmandu")  # +12 h, +5:45
    message = make_message()
    ids = plan(message, [utc, behind, ahead, far], channel=Channel.SMS)
    enqueue_now(ids)
    by_contact = dict(Delivery.objects.values_list("contact_id", "pk"))

    with CaptureQueriesContext(connection) as queries:
        claimed = deliveries_claim(ids=ids, channel="sms", purpose=message.purpose)

    assert sorted(claimed) == sorted([by_contact[ahead.pk], by_contact[far.pk]])
    rows = statuses(ids)
    # Each held row waits for the end of its own contact's window, in its own zone.
    assert rows[by_contact[utc.pk]] == (S.QUEUED, end, 0, QUIET_HOURS_CODE)
    assert rows[by_contact[behind.pk]] == (S.QUEUED, end + timedelta(hours=1), 0, QUIET_HOURS_CODE)
    held = [by_contact[utc.pk], by_contact[behind.pk]]
    details = list(
        DeliveryEvent.objects.filter(delivery_id__in=held).values_list("detail", flat=True)
    )
    assert sum(d.startswith("deferred for quiet hours until") for d in details) == 2
    # Work per distinct zone, not per row: the zones are read once, one UPDATE holds them all.
    assert sum("SELECT DISTINCT" in q["sql"] for q in queries.captured_queries) == 1
    # Not due again before the window ends: a second claim (a redelivered task) takes nothing.
    assert deliveries_claim(ids=ids, channel="sms", purpose=message.purpose) == []


def test_a_contact_with_an_empty_or_unknown_zone_is_held_by_the_default_zones_clock(
    settings: Any,
) -> None:
    now = timezone.now()
    end = whole_seconds(now + timedelta(hours=1))
    settings.REROUTE_QUIET_HOURS = {"sms": window(now - timedelta(hours=1), end)}
    message = make_message()
    settings.REROUTE_DEFAULT_TIMEZONE = "UTC"  # inside the window now
    quiet = plan(message, [sms_contact(""), sms_contact("Not/AZone")], channel=Channel.SMS)
    enqueue_now(quiet)
    assert deliveries_claim(ids=quiet, channel="sms", purpose=message.purpose) == []
    assert {row[:2] for row in statuses(quiet).values()} == {(S.QUEUED, end)}
    settings.REROUTE_DEFAULT_TIMEZONE = "Etc/GMT-12"  # twelve hours ahead: outside it
    awake = plan(message, [sms_contact(""), sms_contact("Not/AZone")], channel=Channel.SMS)
    enqueue_now(awake)
    assert sorted(deliveries_claim(ids=awake, channel="sms", purpose=message.purpose)) == awake


def test_a_channel_without_quiet_hours_claims_with_no_extra_query(settings: Any) -> None:
    now = timezone.now()
    # SMS is quiet for everyone right now; email has no quiet hours at all.
    settings.REROUTE_QUIET_HOURS = {
        "sms": window(now - timedelta(hours=1), now + timedelta(hours=1))
    }
    contacts = [contact_with(Channel.EMAIL, Channel.SMS, push=False) for _ in range(3)]
    message = make_message()
    email_ids = plan(message, contacts, channel=Channel.EMAIL)
    sms_ids = plan(message, contacts, channel=Channel.SMS)
    enqueue_now(email_ids + sms_ids)
    with CaptureQueriesContext(connection) as email_queries:
        assert sorted(deliveries_claim(ids=email_ids, channel="email", purpose="marketing")) == (
            sorted(email_ids)
        )
    with CaptureQueriesContext(connection) as sms_queries:
        assert deliveries_claim(ids=sms_ids, channel="sms", purpose="marketing") == []
    # The email claim: its UPDATE and its events (plus the savepoint pair), nothing more.
    assert [q["sql"].split()[0] for q in email_queries.captured_queries] == [
        "SAVEPOINT",
        "WITH",
        "INSERT",
        "RELEASE",
    ]
    assert len(sms_queries.captured_queries) > len(email_queries.captured_queries)


@pytest.fixture
def paced_sms(
    twilio_fake: TwilioFake, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[[float], TwilioSmsSender]:
    """dispatch's SMS sender pointed at the Twilio fake, paced by a bucket of its own."""

    def make(rate_per_s: float) -> TwilioSmsSender:
        client = redis.Redis.from_url(django_settings.REDIS_URL)
        bucket = RedisTokenBucket(
            client=client, key=f"test:quiet:{request.node.name}", rate_per_s=rate_per_s
        )
        bucket.reset()
        sender = _sender(twilio_fake, limiter=bucket, max_wait_s=60)
        monkeypatch.setattr("delivery.dispatch.channel_sender", lambda channel: sender)
        return sender

    return make


def test_a_paced_chunk_whose_window_starts_mid_chunk_hands_the_rest_back_unsent(
    settings: Any, twilio_fake: TwilioFake, paced_sms: Callable[[float], TwilioSmsSender]
) -> None:
    paced_sms(1.0)  # one SMS a second: five take four seconds at least
    now = timezone.now()
    start = whole_seconds(now + timedelta(seconds=3))  # 2 to 3 s from now
    end = whole_seconds(now + timedelta(hours=1))
    settings.REROUTE_QUIET_HOURS = {"sms": window(start, end)}
    message = make_message()
    ids = plan(message, [sms_contact("UTC") for _ in range(5)], channel=Channel.SMS)
    enqueue_now(ids)

    report = deliveries_send_chunk(channel="sms", ids=ids)

    rows = statuses(ids)
    sent = [i for i, row in rows.items() if row[0] == S.SENT]
    held = [i for i, row in rows.items() if row[0] != S.SENT]
    # The fifth slot is at least four seconds after the first: past the window's start.
    assert held, "every SMS went out although the chunk crossed into quiet hours"
    phones = dict(Delivery.objects.values_list("pk", "contact__phone"))
    assert sorted(recipients(twilio_fake)) == sorted(str(phones[i]) for i in sent)
    assert report.sent == len(sent)
    # Back in the queue until the window ends, the claim's attempt given back; never
    # unknown or failed, since no request left.
    assert {rows[i] for i in held} == {(S.QUEUED, end, 0, QUIET_HOURS_CODE)}
    assert sorted(sent) == sorted(ids)[: len(sent)]


def test_the_sender_makes_no_request_once_the_recipients_quiet_hours_began(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    sender = _sender(twilio_fake, limiter=fast_limiter)
    now = datetime.now(UTC)
    messages = [
        OutboundMessage(delivery_id=1, to="+14155550100", hold_from=now + timedelta(hours=1)),
        OutboundMessage(delivery_id=2, to="+14155550101", hold_from=now - timedelta(seconds=1)),
        OutboundMessage(delivery_id=3, to="+14155550102"),
    ]
    outcomes = sender.send_batch(content=SmsContent(text="Hello"), messages=messages)
    assert [type(o) for o in outcomes] == [Sent, Deferred, Sent]
    assert outcomes[1] == Deferred(2, QUIET_HOURS_CODE, outcomes[1].text)  # type: ignore[union-attr]
    assert recipients(twilio_fake) == ["+14155550100", "+14155550102"]


def test_a_held_row_is_requeued_and_sent_once_its_window_ends_and_never_before(
    settings: Any, twilio_fake: TwilioFake, paced_sms: Callable[[float], TwilioSmsSender]
) -> None:
    paced_sms(1000.0)
    settings.DELIVERY_QUEUED_STALE_S = 3600  # staleness must not be what sends it
    now = timezone.now()
    end = whole_seconds(now + timedelta(seconds=4))
    settings.REROUTE_QUIET_HOURS = {"sms": window(now - timedelta(hours=1), end)}
    message: Message = make_message()
    ids = plan(message, [sms_contact("UTC")], channel=Channel.SMS)
    enqueue_now(ids)
    assert deliveries_send_chunk(channel="sms", ids=ids).claimed == 0
    assert statuses(ids)[ids[0]][:2] == (S.QUEUED, end)

    sent_tasks: list[tuple[str, list[int]]] = []

    def sweep() -> dict[str, int]:
        return deliveries_sweep(send=lambda channel, chunk: sent_tasks.append((channel, chunk)))

    assert sweep()["requeued"] == 0  # before the end of the window
    assert twilio_fake.requests_to(MESSAGES) == []
    eventually(lambda: timezone.now() >= end, timeout=30)
    assert sweep()["requeued"] == 1
    assert sent_tasks == [("sms", ids)]
    report = deliveries_send_chunk(channel="sms", ids=sent_tasks[0][1])
    assert report.sent == 1
    [request] = twilio_fake.requests_to(MESSAGES)
    assert request.received_at >= end.timestamp()
    assert statuses(ids)[ids[0]][0] == S.SENT


class _CommitWaitsPast:
    """A pace whose commit (in the HTTP adapter, right before the request) waits past a moment."""

    rate_per_s = 1000.0

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def reserve(self, *, max_wait_s: float) -> float | None:
        return 0.0

    def commit(self) -> float:
        while datetime.now(UTC) <= self.moment:
            time.sleep(0.01)
        return 0.0


def test_quiet_hours_beginning_while_the_pace_holds_the_request_still_stop_it(
    twilio_fake: TwilioFake,
) -> None:
    hold_from = datetime.now(UTC) + timedelta(seconds=0.3)
    sender = _sender(twilio_fake, limiter=_CommitWaitsPast(hold_from))
    [outcome] = sender.send_batch(
        content=SmsContent(text="Hello"),
        messages=[OutboundMessage(delivery_id=7, to="+14155550100", hold_from=hold_from)],
    )
    assert isinstance(outcome, Deferred) and outcome.code == QUIET_HOURS_CODE
    assert recipients(twilio_fake) == []
