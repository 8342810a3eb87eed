"""In flight and unknown: progress per request, durable answers, claims and their heartbeat.

Only a row recorded as leaving may become `unknown`; a fault before a request leaves puts the
rest of the chunk back in the queue; an answer survives a dropped database connection; the
sweeper tells a dead chunk from a slow live one by its claim's heartbeat.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import redis
from celery.exceptions import Reject
from django.conf import settings as django_settings
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from py_vapid import Vapid02
from redis.backoff import NoBackoff
from redis.retry import Retry

from contacts.models import Channel
from delivery import tasks
from delivery.claim import deliveries_claim
from delivery.dispatch import ChunkProgress, ChunkReport, deliveries_send_chunk
from delivery.inflight import ClaimHeartbeat, claim_open, claims_close, db_write_durably
from delivery.models import Delivery, DeliveryClaim, DeliveryEvent
from delivery.providers.base import (
    OutboundMessage,
    Outcome,
    PushKeys,
    Sent,
    SmsContent,
)
from delivery.providers.twilio_sms import TwilioSmsSender
from delivery.providers.webpush import WebPushSender
from delivery.ratelimit import PaceUnavailable, RedisTokenBucket
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from delivery.transitions import claim_leaving
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.delivery.test_dispatch import enqueue_now, make_message, plan
from tests.delivery.test_materialize import contact_with
from tests.delivery.test_quiet_hours import _sender as twilio_sender
from tests.delivery.test_quiet_hours import recipients
from tests.delivery.test_sendgrid_email import CONTENT as EMAIL_CONTENT
from tests.delivery.test_sendgrid_email import _sender as email_sender
from tests.delivery.test_webpush import CONTENT as PUSH_CONTENT
from tests.harness import eventually

MESSAGES = "/2010-04-01/Accounts/.*/Messages.json"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _PaceDiesAfter:
    """The shared pace, until Redis goes away after `n` slots (a real client, a closed port)."""

    def __init__(self, live: RedisTokenBucket, n: int) -> None:
        self.rate_per_s = live.rate_per_s
        self.live = live
        self.left = n
        dead = redis.Redis(
            port=_closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self.dead = RedisTokenBucket(client=dead, key="gone", rate_per_s=live.rate_per_s)

    def reserve(self, *, max_wait_s: float) -> float | None:
        self.left -= 1
        bucket = self.live if self.left >= 0 else self.dead
        return bucket.reserve(max_wait_s=max_wait_s)

    def commit(self) -> float:
        return self.live.commit() if self.left >= 0 else self.dead.commit()


class _Recording:
    """A SendProgress that notes what the fake had received at each call."""

    def __init__(self, received: Callable[[], int]) -> None:
        self.received = received
        self.calls: list[tuple[str, list[int], int]] = []

    def leaving(self, delivery_ids: Sequence[int]) -> Sequence[int]:
        self.calls.append(("leaving", list(delivery_ids), self.received()))
        return list(delivery_ids)

    def settled(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            self.calls.append(("settled", [o.delivery_id for o in outcomes], self.received()))

    def settle_later(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes:
            self.calls.append(("later", [o.delivery_id for o in outcomes], self.received()))

    def flush(self) -> None:
        return None


def _sms_rows(n: int) -> list[int]:
    message = make_message()
    contacts = [contact_with(Channel.SMS, email=False, push=False) for _ in range(n)]
    return plan(message, contacts, channel=Channel.SMS)


@pytest.fixture
def sms_sender(
    twilio_fake: TwilioFake, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Any], TwilioSmsSender]:
    """dispatch's SMS sender, on the Twilio fake, with the pace given."""

    def make(limiter: Any) -> TwilioSmsSender:
        sender = twilio_sender(twilio_fake, limiter=limiter)
        monkeypatch.setattr("delivery.dispatch.channel_sender", lambda channel: sender)
        return sender

    return make


def _rows(ids: list[int]) -> dict[int, tuple[str, str, int, str]]:
    return {
        i: (status, code, attempt, pid)
        for i, status, code, attempt, pid in Delivery.objects.filter(id__in=ids).values_list(
            "id", "status", "error_code", "attempt", "provider_message_id"
        )
    }


# --- senders report each request as it goes ---------------------------------------------------


def test_each_sms_is_recorded_as_leaving_before_its_request_and_answered_before_the_next(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    sender = twilio_sender(twilio_fake, limiter=fast_limiter)
    progress = _Recording(lambda: len(twilio_fake.requests_to(MESSAGES)))
    messages = [OutboundMessage(delivery_id=i, to=f"+1415555010{i}") for i in (1, 2, 3)]
    outcomes = sender.send_batch(
        content=SmsContent(text="Hello"), messages=messages, progress=progress
    )
    assert [o.delivery_id for o in outcomes] == [1, 2, 3]
    # Each answer is handed over before the next request is recorded as leaving (which writes
    # it in the same statement) and before the next one leaves.
    assert progress.calls == [
        ("leaving", [1], 0),
        ("later", [1], 1),
        ("leaving", [2], 1),
        ("later", [2], 2),
        ("leaving", [3], 2),
        ("later", [3], 3),
    ]


class _NoPace:
    rate_per_s = float("inf")

    def reserve(self, *, max_wait_s: float) -> float | None:
        return 0.0

    def commit(self) -> float:
        return 0.0


class _AnswersSeenAtEachRequest(ChunkProgress):
    """Notes which rows are `sent` in the database each time a request is about to leave."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[list[int]] = []

    def leaving(self, delivery_ids: Sequence[int]) -> list[int]:
        ours = super().leaving(delivery_ids)
        sent = Delivery.objects.filter(id__in=self.claimed_ids, status=S.SENT)
        self.seen.append(sorted(sent.values_list("id", flat=True)))
        return ours


@pytest.mark.django_db
def test_each_sms_answer_is_in_the_database_before_the_next_request_in_one_statement_each(
    twilio_fake: TwilioFake,
) -> None:
    claim_id, ids = _claimed(4, heartbeat_age_s=0)
    progress = _AnswersSeenAtEachRequest(
        claim_id=claim_id, claimed_ids=ids, channel="sms", report=ChunkReport("sms"), quiet=None
    )
    phones = dict(Delivery.objects.filter(id__in=ids).values_list("id", "contact__phone"))
    messages = [OutboundMessage(delivery_id=i, to=str(phones[i])) for i in ids]
    sender = twilio_sender(twilio_fake, limiter=_NoPace())
    with CaptureQueriesContext(connection) as queries:
        sender.send_batch(content=SmsContent(text="Hi"), messages=messages, progress=progress)
    assert progress.seen == [[], ids[:1], ids[:2], ids[:3]]
    # One statement per SMS (its "leaving" record carrying the previous answer), and the last
    # answer on its own.
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    assert len(writes) == len(ids) + 1
    sids = {m.to: m.sid for m in twilio_fake.messages}
    assert _rows(ids) == {i: (S.SENT, "", 1, sids[str(phones[i])]) for i in ids}
    assert progress.report.sent == len(ids)


def test_each_email_request_is_recorded_as_leaving_and_answered_on_its_own(
    sendgrid_fake: SendGridFake,
) -> None:
    sender = email_sender(sendgrid_fake, batch_size=2)
    progress = _Recording(lambda: len(sendgrid_fake.personalizations))
    messages = [
        OutboundMessage(delivery_id=i, to=f"p{i}@example.com", merge_fields={"first_name": "A"})
        for i in range(1, 6)
    ]
    outcomes = sender.send_batch(content=EMAIL_CONTENT, messages=messages, progress=progress)
    assert [o.delivery_id for o in outcomes] == [1, 2, 3, 4, 5]
    assert progress.calls == [
        ("leaving", [1, 2], 0),
        ("settled", [1, 2], 2),
        ("leaving", [3, 4], 2),
        ("settled", [3, 4], 4),
        ("leaving", [5], 4),
        ("settled", [5], 5),
    ]


def test_pushes_are_recorded_as_leaving_and_answered_one_window_at_a_time(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    sender = WebPushSender(vapid=vapid, subject="mailto:ops@example.com", window=2, concurrency=4)
    messages = []
    for i in range(1, 6):
        sub = push_fake.subscription_create()
        messages.append(
            OutboundMessage(
                delivery_id=i,
                to=sub["endpoint"],
                merge_fields={"first_name": "A", "shop": "S"},
                push_keys=PushKeys(**sub["keys"]),
            )
        )
    progress = _Recording(lambda: len(push_fake.pushes))
    outcomes = sender.send_batch(content=PUSH_CONTENT, messages=messages, progress=progress)
    assert [o.delivery_id for o in outcomes] == [1, 2, 3, 4, 5]
    assert all(isinstance(o, Sent) for o in outcomes)
    assert [(kind, ids) for kind, ids, _ in progress.calls] == [
        ("leaving", [1, 2]),
        ("settled", [1, 2]),
        ("leaving", [3, 4]),
        ("settled", [3, 4]),
        ("leaving", [5]),
        ("settled", [5]),
    ]
    # No request of a window leaves before it is recorded, and all are answered before the next.
    assert [seen for _, _, seen in progress.calls] == [0, 2, 2, 4, 4, 5]


@pytest.fixture
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


# --- a fault before a request leaves defers the rest --------------------------------------------


@pytest.mark.django_db
def test_redis_lost_mid_sms_chunk_keeps_what_was_sent_and_puts_the_untried_rest_back(
    twilio_fake: TwilioFake,
    fast_limiter: RedisTokenBucket,
    sms_sender: Callable[[Any], TwilioSmsSender],
) -> None:
    sms_sender(_PaceDiesAfter(fast_limiter, 2))
    ids = _sms_rows(5)
    enqueue_now(ids)
    retried: list[dict[str, Any]] = []
    task = SimpleNamespace(
        request=SimpleNamespace(retries=2), retry=lambda **kwargs: retried.append(kwargs)
    )

    result = tasks._send_chunk(task, "sms", ids)

    rows = _rows(ids)
    first, rest = sorted(ids)[:2], sorted(ids)[2:]
    phones = dict(Delivery.objects.filter(id__in=ids).values_list("id", "contact__phone"))
    assert recipients(twilio_fake) == [str(phones[i]) for i in first]
    sids = {m.to: m.sid for m in twilio_fake.messages}
    assert {i: rows[i] for i in first} == {i: (S.SENT, "", 1, sids[str(phones[i])]) for i in first}
    # Never tried: queued again, attempt given back, not labelled a lost worker or unknown.
    assert {rows[i] for i in rest} == {(S.QUEUED, "pace_unavailable", 0, "")}
    assert result == {"claimed": 5, "sent": 2}
    [call] = retried
    assert call["args"] == [rest]
    # Back-off grows with the task's retries (base 5 s doubled twice, jittered in its top half).
    assert 10 <= call["countdown"] <= 20
    not_before = Delivery.objects.filter(id__in=rest).values_list("not_before", flat=True)
    assert all(nb is not None and nb > timezone.now() for nb in not_before)


class _CommitDiesAfter(_PaceDiesAfter):
    """Slots are still handed out, but Redis is gone by the commit right before the request."""

    def reserve(self, *, max_wait_s: float) -> float | None:
        return self.live.reserve(max_wait_s=max_wait_s)

    def commit(self) -> float:
        self.left -= 1
        return self.live.commit() if self.left >= 0 else self.dead.commit()


@pytest.mark.django_db
def test_redis_lost_between_the_leaving_record_and_the_request_leaves_nothing_unknown(
    twilio_fake: TwilioFake,
    fast_limiter: RedisTokenBucket,
    sms_sender: Callable[[Any], TwilioSmsSender],
) -> None:
    sms_sender(_CommitDiesAfter(fast_limiter, 2))
    ids = _sms_rows(4)
    enqueue_now(ids)
    report = deliveries_send_chunk(channel="sms", ids=ids)
    assert report.interrupted == "pace_unavailable"
    assert len(recipients(twilio_fake)) == 2
    # The third row was recorded as leaving, but the pace stopped it before it was written.
    [claim] = DeliveryClaim.objects.all()
    assert claim.leaving == [sorted(ids)[2]]
    deliveries_sweep(send=lambda channel, chunk: None)  # the chunk expired its claim
    rows = _rows(ids)
    assert [rows[i][:2] for i in sorted(ids)] == [
        (S.SENT, ""),
        (S.SENT, ""),
        (S.QUEUED, "pace_unavailable"),
        (S.QUEUED, "pace_unavailable"),
    ]
    assert not DeliveryClaim.objects.exists()


@pytest.mark.django_db
def test_a_retry_that_cannot_be_queued_leaves_the_rows_queued_for_the_sweeper(
    fast_limiter: RedisTokenBucket,
    sms_sender: Callable[[Any], TwilioSmsSender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sms_sender(_PaceDiesAfter(fast_limiter, 0))
    ids = _sms_rows(3)
    enqueue_now(ids)

    def retry(**kwargs: Any) -> None:
        raise Reject("broker down", requeue=False)

    task = SimpleNamespace(request=SimpleNamespace(retries=0), retry=retry)
    with caplog.at_level(logging.WARNING, logger="delivery.tasks"):
        assert tasks._send_chunk(task, "sms", ids) == {"claimed": 3, "sent": 0}
    assert {r[0] for r in _rows(ids).values()} == {S.QUEUED}
    assert "the sweeper re-enqueues them" in caplog.text


def test_a_pace_that_cannot_reach_redis_says_so_instead_of_failing_the_chunk() -> None:
    client = redis.Redis(
        port=_closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    bucket = RedisTokenBucket(client=client, key="k", rate_per_s=10)
    with pytest.raises(PaceUnavailable) as reserve:
        bucket.reserve(max_wait_s=1)
    with pytest.raises(PaceUnavailable):
        bucket.commit()
    assert reserve.value.code == "pace_unavailable"


# --- answers are durable -----------------------------------------------------------------------


class _BackendKillingTwilio(TwilioFake):
    """Terminates one database backend right after it accepts message number `at`."""

    def __init__(self, *, at: int, **kwargs: Any) -> None:
        self.at = at
        self.victim = 0
        super().__init__(**kwargs)

    def _create(self, request: Any, match: Any) -> Any:
        response = super()._create(request, match)
        if self.accepted == self.at and self.victim:
            db = connection.settings_dict
            with psycopg.connect(
                host=db["HOST"] or "127.0.0.1",
                port=db["PORT"] or 5432,
                user=db["USER"],
                dbname=db["NAME"],
                autocommit=True,
            ) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", [self.victim])
        return response


@pytest.mark.django_db(transaction=True)
def test_an_answer_is_written_even_when_the_database_connection_drops_under_the_chunk(
    sink: Any,
    fast_limiter: RedisTokenBucket,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _BackendKillingTwilio(at=2, account_sid="AC" + "1" * 32, auth_token="t") as fake:
        sender = twilio_sender(fake, limiter=fast_limiter)
        monkeypatch.setattr("delivery.dispatch.channel_sender", lambda channel: sender)
        ids = _sms_rows(4)
        enqueue_now(ids)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            fake.victim = cursor.fetchone()[0]
        with caplog.at_level(logging.WARNING, logger="delivery.inflight"):
            report = deliveries_send_chunk(channel="sms", ids=ids)
        sids = {m.to: m.sid for m in fake.messages}
    assert "reconnecting" in caplog.text
    assert report.sent == 4
    phones = dict(Delivery.objects.filter(id__in=ids).values_list("id", "contact__phone"))
    assert _rows(ids) == {i: (S.SENT, "", 1, sids[str(phones[i])]) for i in ids}


@pytest.mark.django_db(transaction=True)
def test_a_durable_write_reconnects_and_tries_again_but_never_inside_a_transaction() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "written"

    assert db_write_durably(flaky, what="test", base_s=0.001) == "written"
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(OperationalError), transaction.atomic():
        db_write_durably(flaky, what="test", base_s=0.001)
    assert len(calls) == 1


# --- claims, the heartbeat and the sweeper -----------------------------------------------------


def _claimed(n: int, *, heartbeat_age_s: float) -> tuple[int, list[int]]:
    ids = _sms_rows(n)
    enqueue_now(ids)
    message = Delivery.objects.get(pk=ids[0]).message
    claim_id = claim_open(workspace_id=message.workspace_id, channel="sms")
    assert deliveries_claim(ids=ids, channel="sms", purpose="marketing", claim_id=claim_id) == ids
    DeliveryClaim.objects.filter(pk=claim_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_s)
    )
    # Long past the 15-minute clock: only the claim can say whether the chunk lives.
    Delivery.objects.filter(id__in=ids).update(sending_at=timezone.now() - timedelta(hours=1))
    return claim_id, ids


@pytest.mark.django_db
def test_the_sweeper_leaves_a_slow_live_chunk_alone_however_long_it_has_been_sending() -> None:
    claim_id, ids = _claimed(3, heartbeat_age_s=5)
    assert claim_leaving(claim_id=claim_id, delivery_ids=ids[:1]) == (True, [])
    DeliveryClaim.objects.filter(pk=claim_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=5)
    )
    handed: list[list[int]] = []
    assert deliveries_sweep(send=lambda channel, chunk: handed.append(chunk)) == {
        "unknown": 0,
        "requeued": 0,
        "stranded": 0,
    }
    assert {r[0] for r in _rows(ids).values()} == {S.SENDING}
    assert handed == []
    assert DeliveryClaim.objects.filter(pk=claim_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("claim", ["stale", "expired"])
def test_a_dead_chunk_is_resolved_untried_rows_requeued_and_only_the_one_in_flight_unknown(
    claim: str,
) -> None:
    claim_id, ids = _claimed(4, heartbeat_age_s=django_settings.DELIVERY_CLAIM_STALE_S + 5)
    if claim == "expired":
        # A chunk stopped by a fault hands its claim to the sweeper at once.
        DeliveryClaim.objects.filter(pk=claim_id).update(heartbeat_at=timezone.now())
        claims_close(claim_ids=[claim_id], clean=False)
    Delivery.objects.filter(pk=ids[0]).update(status=S.SENT)  # answered before the worker died
    DeliveryClaim.objects.filter(pk=claim_id).update(leaving=ids[1:2])
    handed: list[tuple[str, list[int]]] = []
    result = deliveries_sweep(send=lambda channel, chunk: handed.append((channel, chunk)))
    assert result == {"unknown": 1, "requeued": 2, "stranded": 0}
    rows = _rows(ids)
    assert rows[ids[0]][0] == S.SENT
    assert rows[ids[1]][:3] == (S.UNKNOWN, "worker_lost", 1)
    assert {rows[i][:3] for i in ids[2:]} == {(S.QUEUED, "worker_lost_unsent", 0)}
    assert handed == [("sms", ids[2:])]
    assert not Delivery.objects.filter(id__in=ids[2:], claim__isnull=False).exists()
    assert not DeliveryClaim.objects.filter(pk=claim_id).exists()


class _Counting:
    """The shared pace, counting the slots taken."""

    def __init__(self, live: RedisTokenBucket) -> None:
        self.live = live
        self.rate_per_s = live.rate_per_s
        self.reserved = 0

    def reserve(self, *, max_wait_s: float) -> float | None:
        self.reserved += 1
        return self.live.reserve(max_wait_s=max_wait_s)

    def commit(self) -> float:
        return self.live.commit()


class _SweptAfterFirstAnswer(ChunkProgress):
    """The sweeper judges the chunk dead (its heartbeat stalled) right after its first answer."""

    def settle_later(self, outcomes: Sequence[Outcome]) -> None:
        super().settle_later(outcomes)
        if outcomes and not getattr(self, "swept", False):
            self.swept = True
            DeliveryClaim.objects.filter(pk=self.claim_id).update(
                heartbeat_at=timezone.now() - timedelta(hours=1)
            )
            deliveries_sweep(send=lambda channel, chunk: None)


@pytest.mark.django_db
def test_a_chunk_whose_claim_the_sweeper_took_back_sends_nothing_more(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    claim_id, ids = _claimed(3, heartbeat_age_s=0)
    report = ChunkReport(channel="sms")
    progress = _SweptAfterFirstAnswer(
        claim_id=claim_id, claimed_ids=ids, channel="sms", report=report, quiet=None
    )
    phones = dict(Delivery.objects.filter(id__in=ids).values_list("id", "contact__phone"))
    messages = [OutboundMessage(delivery_id=i, to=str(phones[i])) for i in ids]
    pace = _Counting(fast_limiter)
    sender = twilio_sender(twilio_fake, limiter=pace)
    progress.settled(
        sender.send_batch(content=SmsContent(text="Hi"), messages=messages, progress=progress)
    )
    assert recipients(twilio_fake) == [str(phones[ids[0]])]
    # The second message found the claim gone; the third took no slot of the shared pace.
    assert pace.reserved == 2
    rows = _rows(ids)
    assert [rows[i][:3] for i in ids] == [
        (S.SENT, "", 1),
        (S.QUEUED, "worker_lost_unsent", 0),
        (S.QUEUED, "worker_lost_unsent", 0),
    ]
    assert report.sent == 1
    assert progress.lost


@pytest.mark.django_db
def test_an_answer_that_comes_after_the_sweeper_gave_up_still_settles_the_row() -> None:
    claim_id, ids = _claimed(1, heartbeat_age_s=0)
    assert claim_leaving(claim_id=claim_id, delivery_ids=ids) == (True, [])
    # The worker was only slow: its heartbeat stopped for longer than the threshold.
    DeliveryClaim.objects.filter(pk=claim_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=django_settings.DELIVERY_CLAIM_STALE_S + 5)
    )
    deliveries_sweep(send=lambda channel, chunk: None)
    assert _rows(ids)[ids[0]][0] == S.UNKNOWN
    progress = ChunkProgress(
        claim_id=claim_id, claimed_ids=ids, channel="sms", report=ChunkReport("sms"), quiet=None
    )
    progress.settled([Sent(ids[0], "SM" + "a" * 32, "twilio")])
    assert _rows(ids)[ids[0]] == (S.SENT, "", 1, "SM" + "a" * 32)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_claim_fresh_from_its_own_thread() -> None:
    message = make_message()
    claim_id = claim_open(workspace_id=message.workspace_id, channel="sms")
    old = timezone.now() - timedelta(hours=1)
    DeliveryClaim.objects.filter(pk=claim_id).update(heartbeat_at=old)
    heartbeat = ClaimHeartbeat(interval_s=0.05)
    heartbeat.track(claim_id)
    try:
        eventually(
            lambda: (
                DeliveryClaim.objects.get(pk=claim_id).heartbeat_at > old + timedelta(minutes=59)
            ),
            timeout=30,
        )
    finally:
        heartbeat.stop()


@pytest.mark.django_db
def test_recording_a_request_leaving_is_one_small_write_however_many_recipients(
    django_assert_num_queries: Any,
) -> None:
    # Once per SMS, per email request of 1,000 recipients, per push window: on the hot path.
    claim_id, ids = _claimed(3, heartbeat_age_s=0)
    with django_assert_num_queries(1) as queries:
        assert claim_leaving(claim_id=claim_id, delivery_ids=ids) == (True, [])
    assert queries.captured_queries[0]["sql"].startswith('UPDATE "delivery_deliveryclaim"')
    assert DeliveryClaim.objects.get(pk=claim_id).leaving == ids
    # The next request's record carries the previous answer, still one statement.
    with django_assert_num_queries(1):
        kept, moved = claim_leaving(
            claim_id=claim_id,
            delivery_ids=ids[1:2],
            sent={ids[0]: ("SM" + "b" * 32, 2)},
            provider="twilio",
        )
    assert (kept, moved) == (True, ids[:1])
    assert _rows(ids)[ids[0]] == (S.SENT, "", 1, "SM" + "b" * 32)
    assert DeliveryEvent.objects.filter(delivery_id=ids[0], status=S.SENT).count() == 1
    DeliveryClaim.objects.filter(pk=claim_id).delete()
    assert claim_leaving(claim_id=claim_id, delivery_ids=ids) == (False, [])
