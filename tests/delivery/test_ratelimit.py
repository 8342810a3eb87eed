from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from django.conf import settings

from delivery.ratelimit import (
    FileTokenBucket,
    RedisTokenBucket,
    rate_limiter_acquire,
    rate_limiter_commit,
)

T = TypeVar("T")


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _key(name: str) -> str:
    """A pace key inside this run's Redis namespace."""
    return f"{settings.REDIS_KEY_PREFIX}{name}"


def _timed(call: Callable[[], T]) -> tuple[float, T, float]:
    """(local time before, result, local time after): Redis read its clock (the same host clock)
    somewhere in between, however long a busy machine kept this process waiting."""
    before = time.time()
    result = call()
    return before, result, time.time()


def _max_in_any_window(intervals: list[tuple[float, float]], window: float = 1.0) -> int:
    """The most sends that surely started inside one window: each send started somewhere in its
    (before, after) interval, so only intervals wholly inside the window count."""
    return max(
        sum(1 for b, a in intervals if start <= b and a < start + window) for start, _ in intervals
    )


def test_slots_are_spaced_by_the_rate_across_callers(client: redis.Redis) -> None:
    bucket = RedisTokenBucket(client=client, key=_key("test:spacing"), rate_per_s=50)
    bucket.reset()
    calls = [_timed(lambda: bucket.reserve(max_wait_s=10)) for _ in range(10)]
    assert calls[0][1] == 0
    # Slot k lies in [before + wait, after + wait]. Slots are never closer than one interval
    # (20 ms), and a caller that had to wait got exactly the slot one interval after the last.
    for (b0, w0, a0), (b1, w1, a1) in itertools.pairwise(calls):
        assert w0 is not None and w1 is not None
        assert (a1 + w1) - (b0 + w0) >= 0.02 - 0.001
        if w1 > 0:
            assert (b1 + w1) - (a0 + w0) <= 0.02 + 0.001


def test_a_slot_beyond_the_longest_wait_is_refused_and_not_reserved(client: redis.Redis) -> None:
    # One slot every 10 s: far enough that no stall of this process can bring the next one near.
    bucket = RedisTokenBucket(client=client, key=_key("test:refuse"), rate_per_s=0.1)
    bucket.reset()
    b0, first, a0 = _timed(lambda: bucket.reserve(max_wait_s=0))
    assert first == 0
    assert bucket.reserve(max_wait_s=0.5) is None
    assert rate_limiter_acquire(limiter=bucket, max_wait_s=0.5) is False
    # The refusals reserved nothing: the next slot is still the one 10 s after the first.
    b1, wait, a1 = _timed(lambda: bucket.reserve(max_wait_s=30))
    assert wait is not None
    assert 10 - (a1 - b0) - 0.001 <= wait <= 10 - (b1 - a0) + 0.001


def test_a_non_positive_rate_is_refused(client: redis.Redis, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        RedisTokenBucket(client=client, key="x", rate_per_s=0)
    with pytest.raises(ValueError, match="positive"):
        FileTokenBucket(path=tmp_path / "b", rate_per_s=-1)


def _worker(url: str, key: str, n: int, out: multiprocessing.Queue) -> None:
    bucket = RedisTokenBucket(client=redis.Redis.from_url(url), key=key, rate_per_s=40)
    reserved_from = time.time()
    commits = []
    for _ in range(n):
        assert rate_limiter_acquire(limiter=bucket, max_wait_s=30, commit=False)
        before = time.time()
        rate_limiter_commit(limiter=bucket)
        commits.append((before, time.time()))
    out.put((reserved_from, commits))


def test_two_processes_together_never_exceed_the_rate_in_any_second(client: redis.Redis) -> None:
    key = _key("test:procs")
    RedisTokenBucket(client=client, key=key, rate_per_s=40).reset()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(settings.REDIS_URL, key, 40, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    commits = [c for _, mine in results for c in mine]
    assert len(commits) == 80
    assert _max_in_any_window(commits) <= 40
    # 80 slots one interval (25 ms) apart, and no send before its slot.
    first_reserve = min(start for start, _ in results)
    assert max(a for _, a in commits) - first_reserve >= 79 / 40 * 0.99


def test_the_file_bucket_paces_the_same_way(tmp_path: Path) -> None:
    # One slot per 1.01 s (rate 1 plus the margin): no stall of this process brings one near.
    bucket = FileTokenBucket(path=tmp_path / "sms", rate_per_s=1)
    calls = [_timed(lambda: bucket.reserve(max_wait_s=5)) for _ in range(5)]
    assert calls[0][1] == 0
    for (b0, w0, a0), (b1, w1, a1) in itertools.pairwise(calls):
        assert w0 is not None and w1 is not None
        assert (a1 + w1) - (b0 + w0) >= 1.01 - 0.001
        if w1 > 0:
            assert (b1 + w1) - (a0 + w0) <= 1.01 + 0.001
    assert bucket.commit() == 0.0
    assert FileTokenBucket(path=tmp_path / "sms", rate_per_s=1).reserve(max_wait_s=0) is None


def test_a_send_that_would_crowd_a_second_is_held_back_even_when_slots_came_late(
    client: redis.Redis,
) -> None:
    bucket = RedisTokenBucket(client=client, key=_key("test:late"), rate_per_s=5, margin_s=0.01)
    bucket.reset()
    # Five sends committed in a burst (their slots were late and bunched up)...
    first_before = time.time()
    assert [bucket.commit() for _ in range(5)] == [0.0] * 5
    first_after = time.time()
    # ...so a sixth must wait until one second (plus the margin) after the first.
    before, hold, after = _timed(bucket.commit)
    assert 1.01 - (after - first_before) - 0.001 <= hold <= 1.01 - (before - first_after) + 0.001
    held: list[float] = []

    def sleep(seconds: float) -> None:
        held.append(seconds)
        time.sleep(seconds)

    assert rate_limiter_acquire(limiter=bucket, max_wait_s=5, sleep=sleep)
    # It went only once the first send was more than the window behind, and waited no longer
    # than the hold it was told (each later hold is measured again from Redis's clock).
    assert time.time() >= first_before + 1.01 - 0.001
    assert 0 < sum(held) <= hold + 0.001
