"""Faults in the middle of a paced SMS send, with real worker processes, a Redis each test owns
and the Twilio fake: `unknown` is bounded by the requests in flight, nothing that never left is
stranded, nothing is sent twice, and every answer keeps its SID. Where a kill leaves a row
`unknown`, the sweeper reconciles it with Twilio's list (delivery/reconcile.py): in the end no
row is `unknown` that the fake never received."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest
from django.test import override_settings

from delivery.dispatch import deliveries_enqueue
from delivery.models import Delivery, DeliveryClaim, DeliveryEvent
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from sandbox.twilio import TwilioFake
from tests.chaos.conftest import (
    RECONCILE_WORKER_ENV,
    OwnedRedis,
    backends_terminate,
    ids_in,
    owned_send,
    phones_by_delivery,
    settled,
    sids_by_phone,
    sms_env,
    sms_rows,
    sweeps_until_recovered,
    twilio_fake_started,
)
from tests.harness import ProcessHandle, eventually

pytestmark = [pytest.mark.chaos]


def _statuses(ids: list[int]) -> Counter[str]:
    return Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))


def _assert_sids_kept(ids: list[int], fake: TwilioFake) -> None:
    """Every sent row carries the SID the fake gave its one message (what callbacks match)."""
    phones = phones_by_delivery(ids)
    got = sids_by_phone(fake)
    # Delivered: a row reconciled with Twilio's list also takes the status it lists.
    for delivery_id, pid in Delivery.objects.filter(
        id__in=ids, status__in=[S.SENT, S.DELIVERED]
    ).values_list("id", "provider_message_id"):
        assert got.get(phones[delivery_id]) == [pid], delivery_id


def test_redis_stopped_mid_paced_sms_defers_what_never_left_and_sends_it_once_redis_is_back(
    owned_redis: OwnedRedis,
    twilio_chaos: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    ids = sms_rows(200)
    phones = phones_by_delivery(ids)
    send = owned_send(owned_redis.url)
    env = sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=twilio_chaos)
    celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    deliveries_enqueue(ids=ids, send=send)
    eventually(lambda: twilio_chaos.accepted >= 50, timeout=120)
    owned_redis.stop()

    # The pace cannot be asked: the chunk stops before its next request and hands back the rest.
    eventually(lambda: not ids_in(ids, S.SENDING), timeout=120, interval=0.2)
    before = sids_by_phone(twilio_chaos)
    assert 50 <= len(before) < len(ids)
    assert not ids_in(ids, S.UNKNOWN)
    waiting = ids_in(ids, S.QUEUED)
    assert {phones[i] for i in waiting}.isdisjoint(before)
    assert len(waiting) + len(before) == len(ids)
    assert set(Delivery.objects.filter(id__in=waiting).values_list("error_code", "attempt")) == {
        ("pace_unavailable", 0)
    }
    _assert_sids_kept(ids, twilio_chaos)
    assert len(ids_in(ids, S.SENT)) == len(before)
    sids_before = dict(
        Delivery.objects.filter(id__in=ids, status=S.SENT).values_list("id", "provider_message_id")
    )

    # Redis comes back empty (the worker's retry could not be queued): the sweeper re-enqueues.
    owned_redis.start()

    # Nothing was in flight when Redis went: no row was ever unknown on the way.
    assert sweeps_until_recovered(ids, send=send) == set()
    assert _statuses(ids) == Counter({S.SENT: len(ids)})
    got = sids_by_phone(twilio_chaos)
    assert set(got) == set(phones.values())
    assert {len(sids) for sids in got.values()} == {1}
    _assert_sids_kept(ids, twilio_chaos)
    after = dict(
        Delivery.objects.filter(id__in=sids_before).values_list("id", "provider_message_id")
    )
    assert after == sids_before


def test_a_worker_killed_mid_sms_chunk_leaves_unknown_only_its_request_in_flight(
    owned_redis: OwnedRedis,
    twilio_chaos: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    ids = sms_rows(200)
    phones = phones_by_delivery(ids)
    send = owned_send(owned_redis.url)
    env = {
        **sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=twilio_chaos),
        **RECONCILE_WORKER_ENV,
    }
    worker = celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    deliveries_enqueue(ids=ids, send=send)
    eventually(lambda: twilio_chaos.accepted >= 50, timeout=120)
    worker.kill(signal.SIGKILL)
    worker.proc.wait(timeout=60)
    received_at_kill = set(sids_by_phone(twilio_chaos))
    # The whole rest of the chunk is claimed, but at most one request (concurrency 1, one SMS at a
    # time) was leaving when the process died.
    assert len(ids_in(ids, S.SENDING)) > len(ids) - len(received_at_kill) - 2
    [claim] = DeliveryClaim.objects.all()
    assert len(claim.leaving) <= 1

    celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)

    # What beat does every DELIVERY_SWEEP_INTERVAL_S, until every row is settled.
    was_unknown = sweeps_until_recovered(ids, send=send)
    # At most the one request in flight was ever unknown, and reconciliation settled it.
    assert len(was_unknown) <= 1
    unknown = set(
        DeliveryEvent.objects.filter(delivery_id__in=ids, status=S.UNKNOWN).values_list(
            "delivery_id", flat=True
        )
    )
    assert unknown == was_unknown
    statuses = _statuses(ids)
    assert set(statuses) <= {S.SENT, S.DELIVERED}
    assert statuses[S.SENT] + statuses[S.DELIVERED] == len(ids)
    assert set(ids_in(ids, S.DELIVERED)) <= was_unknown
    got = sids_by_phone(twilio_chaos)
    assert set(got) == set(phones.values())
    assert {len(sids) for sids in got.values()} == {1}
    _assert_sids_kept(ids, twilio_chaos)
    # Everything the dead worker had not started went back to the queue, none of it unknown.
    requeued = set(
        DeliveryEvent.objects.filter(
            delivery_id__in=ids, detail="retry: worker_lost_unsent"
        ).values_list("delivery_id", flat=True)
    )
    assert len(requeued) >= len(ids) - len(received_at_kill) - 1
    assert not requeued & unknown
    assert {phones[i] for i in requeued}.isdisjoint(received_at_kill)


def test_worker_database_connections_killed_after_sends_keep_every_answer_and_sid(
    owned_redis: OwnedRedis,
    twilio_chaos: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    ids = sms_rows(60)
    # Each answer takes a while, so the connections die while the worker waits for one and the
    # write of that answer is the first to meet the dead connection.
    twilio_chaos.set_fault(mode="slow", delay_s=0.08)
    env = sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=twilio_chaos)
    worker = celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    deliveries_enqueue(ids=ids, send=owned_send(owned_redis.url))
    terminated = 0
    for threshold in (10, 25, 40):

        def reached(at: int = threshold) -> bool:
            return twilio_chaos.accepted >= at

        eventually(reached, timeout=120, interval=0.02)
        terminated += backends_terminate()
    assert terminated >= 1

    eventually(lambda: settled(ids), timeout=120, interval=0.2)
    assert _statuses(ids) == Counter({S.SENT: len(ids)})
    got = sids_by_phone(twilio_chaos)
    assert len(got) == len(ids)
    assert {len(sids) for sids in got.values()} == {1}
    _assert_sids_kept(ids, twilio_chaos)
    assert "reconnecting" in worker.output


def test_the_sweeper_resolves_a_dead_chunk_in_seconds_and_leaves_a_slow_live_one_alone(
    owned_redis: OwnedRedis,
    twilio_chaos: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    slow_twilio = twilio_fake_started()
    try:
        # Each of these answers takes longer than the claim's stale threshold below: only the
        # heartbeat says this chunk is alive.
        slow_twilio.set_fault(mode="slow", delay_s=2.5)
        live = sms_rows(5)
        dead = sms_rows(150)
        slow_env = sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=slow_twilio)
        fast_env = sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=twilio_chaos)
        slow = celery_worker_process(
            queues=["chaos_slow"], concurrency=1, env_extra=slow_env, wait_ready=False
        )
        fast = celery_worker_process(
            queues=["sms"], concurrency=1, env_extra=fast_env, wait_ready=False
        )
        slow.wait_for(" ready.", timeout=180)
        fast.wait_for(" ready.", timeout=180)
        deliveries_enqueue(ids=live, send=owned_send(owned_redis.url, queue="chaos_slow"))
        deliveries_enqueue(ids=dead, send=owned_send(owned_redis.url))
        eventually(lambda: twilio_chaos.accepted >= 20 and slow_twilio.accepted >= 1, timeout=120)
        fast.kill(signal.SIGKILL)
        fast.proc.wait(timeout=60)
        killed_at = time.monotonic()
        handed_back: list[int] = []

        def sweep() -> None:
            with override_settings(DELIVERY_CLAIM_STALE_S=2):
                deliveries_sweep(send=lambda channel, chunk: handed_back.extend(chunk))

        def dead_resolved() -> bool:
            sweep()
            return not ids_in(dead, S.SENDING)

        eventually(dead_resolved, timeout=60, interval=0.5)
        # Seconds, where the 15-minute clock (DELIVERY_SENDING_STALE_S) would still be waiting.
        assert time.monotonic() - killed_at < 45
        assert ids_in(live, S.SENDING), "the slow chunk should still be at work"
        assert set(_statuses(live)) <= {S.SENDING, S.SENT}
        assert len(ids_in(dead, S.UNKNOWN)) <= 1
        dead_untried = ids_in(dead, S.QUEUED)
        assert len(dead_untried) >= len(dead) - twilio_chaos.accepted - 1
        assert dead_untried <= set(handed_back)
        assert not {phones for phones in phones_by_delivery(sorted(dead_untried)).values()} & set(
            sids_by_phone(twilio_chaos)
        )

        def live_done() -> bool:
            sweep()
            return settled(live)

        eventually(live_done, timeout=120, interval=0.5)
        assert _statuses(live) == Counter({S.SENT: len(live)})
        touched = DeliveryEvent.objects.filter(
            delivery_id__in=live, status__in=[S.UNKNOWN, S.QUEUED]
        ).exclude(detail="enqueued")
        assert not touched.exists()
        assert {len(sids) for sids in sids_by_phone(slow_twilio).values()} == {1}
        _assert_sids_kept(live, slow_twilio)
        assert slow.alive()
    finally:
        slow_twilio.stop()


def _leaving_never_received(ids: list[int], phones: dict[int, str], fake: TwilioFake) -> list[int]:
    received = set(sids_by_phone(fake))
    leaving = {int(i) for claim in DeliveryClaim.objects.all() for i in claim.leaving}
    return [i for i in ids if i in leaving and phones[i] not in received]


def test_a_kill_between_the_leaving_record_and_the_request_is_reconciled_and_sent_once(
    owned_redis: OwnedRedis,
    twilio_chaos: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    """The one kill that left a row `unknown` the provider never received: the worker recorded
    the request as leaving and died before writing it. Reconciliation finds nothing at Twilio
    once that is sure, puts the row back in the queue, and it is sent exactly once."""
    ids = sms_rows(150)
    phones = phones_by_delivery(ids)
    send = owned_send(owned_redis.url)
    env = {
        **sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=twilio_chaos, rate=20),
        **RECONCILE_WORKER_ENV,
    }
    worker = celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    deliveries_enqueue(ids=ids, send=send)
    eventually(lambda: twilio_chaos.accepted >= 10, timeout=120)

    # A paced sender spends most of its time waiting for its slot; then it records the next
    # request as leaving and asks Redis to commit the slot. With Redis frozen it stops right
    # there: the row is named as leaving and its request is not written. Kill it then.
    stranded: list[int] = []
    for _ in range(60):
        owned_redis.pause()
        try:
            time.sleep(0.5)
            stranded = _leaving_never_received(ids, phones, twilio_chaos)
            if stranded:
                worker.kill(signal.SIGKILL)
                worker.proc.wait(timeout=60)
        finally:
            owned_redis.resume()
        if stranded:
            break
        time.sleep(0.2)
    assert stranded, "the worker was never caught between its leaving record and its request"
    [row] = stranded
    assert phones[row] not in sids_by_phone(twilio_chaos)

    celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    was_unknown = sweeps_until_recovered(ids, send=send, timeout=240)
    assert was_unknown == {row}
    assert _statuses(ids) == Counter({S.SENT: len(ids)})
    got = sids_by_phone(twilio_chaos)
    assert set(got) == set(phones.values())
    assert {len(sids) for sids in got.values()} == {1}, "a message was sent twice"
    _assert_sids_kept(ids, twilio_chaos)
    timeline = list(
        DeliveryEvent.objects.filter(delivery_id=row).order_by("id").values_list("status", "detail")
    )
    assert (S.UNKNOWN, "the worker was lost while this request was in flight") in timeline
    assert (S.QUEUED, "retry: reconciled_never_left") in timeline


def test_a_kill_while_twilio_holds_the_request_is_reconciled_as_sent_never_sent_again(
    owned_redis: OwnedRedis,
    twilio_chaos: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    """The other side of the same kill: the request did reach Twilio, but the worker died before
    it had the answer. Reconciliation finds the message in Twilio's list and records its SID; it
    is never sent again."""
    ids = sms_rows(60)
    phones = phones_by_delivery(ids)
    send = owned_send(owned_redis.url)
    env = {
        **sms_env(worker_env=worker_env, redis_url=owned_redis.url, twilio=twilio_chaos),
        **RECONCILE_WORKER_ENV,
    }
    worker = celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    deliveries_enqueue(ids=ids, send=send)
    eventually(lambda: twilio_chaos.accepted >= 10, timeout=120)
    # From now on Twilio takes 1.5 s to act on a request (within the worker's 2 s timeout): the
    # worker is killed while it waits for that answer.
    twilio_chaos.set_fault(mode="slow", delay_s=1.5)
    eventually(lambda: bool(_leaving_never_received(ids, phones, twilio_chaos)), timeout=30,
               interval=0.05)  # fmt: skip
    [row] = _leaving_never_received(ids, phones, twilio_chaos)
    time.sleep(0.5)  # the request is written and Twilio is at work on it
    worker.kill(signal.SIGKILL)
    worker.proc.wait(timeout=60)
    eventually(lambda: phones[row] in sids_by_phone(twilio_chaos), timeout=10)
    twilio_chaos.clear_fault()

    celery_worker_process(queues=["sms"], concurrency=1, env_extra=env)
    was_unknown = sweeps_until_recovered(ids, send=send, timeout=240)
    assert was_unknown == {row}
    # The reconciled row also takes the status Twilio lists for it (the fake's: delivered).
    assert _statuses(ids) == Counter({S.SENT: len(ids) - 1, S.DELIVERED: 1})
    got = sids_by_phone(twilio_chaos)
    assert set(got) == set(phones.values())
    assert {len(sids) for sids in got.values()} == {1}, "a message was sent twice"
    _assert_sids_kept(ids, twilio_chaos)
    reconciled = Delivery.objects.get(pk=row)
    assert (reconciled.status, reconciled.provider_message_id) == (
        S.DELIVERED,
        got[phones[row]][0],
    )
