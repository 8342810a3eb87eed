from __future__ import annotations

import itertools
import multiprocessing
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from delivery.ratelimit import FileTokenBucket, RedisTokenBucket, rate_limiter_acquire


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _max_in_any_window(stamps: list[float], window: float = 1.0) -> int:
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_slots_are_spaced_by_the_rate_across_callers(client: redis.Redis) -> None:
    bucket = RedisTokenBucket(client=client, key="test:spacing", rate_per_s=50)
    bucket.reset()
    waits = [bucket.reserve(max_wait_s=10) for _ in range(10)]
    assert waits[0] == pytest.approx(0, abs=0.005)
    # Each reservation lands one interval (20 ms) after the previous, less the time spent asking.
    for earlier, later in itertools.pairwise(waits):
        assert earlier is not None and later is not None
        assert later - earlier == pytest.approx(0.02, abs=0.005)


def test_a_slot_beyond_the_longest_wait_is_refused_and_not_reserved(client: redis.Redis) -> None:
    bucket = RedisTokenBucket(client=client, key="test:refuse", rate_per_s=1)
    bucket.reset()
    assert bucket.reserve(max_wait_s=0) == pytest.approx(0, abs=0.005)
    assert bucket.reserve(max_wait_s=0.5) is None
    assert rate_limiter_acquire(limiter=bucket, max_wait_s=0.5) is False
    # The refusal reserved nothing: the next slot is still about one second out.
    wait = bucket.reserve(max_wait_s=5)
    assert wait is not None and 0.9 < wait <= 1.0


def test_a_non_positive_rate_is_refused(client: redis.Redis, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        RedisTokenBucket(client=client, key="x", rate_per_s=0)
    with pytest.raises(ValueError, match="positive"):
        FileTokenBucket(path=tmp_path / "b", rate_per_s=-1)


def _worker(url: str, n: int, out: multiprocessing.Queue) -> None:
    bucket = RedisTokenBucket(client=redis.Redis.from_url(url), key="test:procs", rate_per_s=40)
    stamps = []
    for _ in range(n):
        assert rate_limiter_acquire(limiter=bucket, max_wait_s=10)
        stamps.append(time.time())
    out.put(stamps)


def test_two_processes_together_never_exceed_the_rate_in_any_second(client: redis.Redis) -> None:
    RedisTokenBucket(client=client, key="test:procs", rate_per_s=40).reset()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(settings.REDIS_URL, 40, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    stamps = out.get(timeout=30) + out.get(timeout=30)
    for proc in procs:
        proc.join(timeout=10)
    assert len(stamps) == 80
    assert _max_in_any_window(stamps) <= 40
    elapsed = max(stamps) - min(stamps)
    assert 79 / 40 * 0.99 <= elapsed <= 79 / 40 * 1.15


def test_the_file_bucket_paces_the_same_way(tmp_path: Path) -> None:
    bucket = FileTokenBucket(path=tmp_path / "sms", rate_per_s=100)
    waits = [bucket.reserve(max_wait_s=5) for _ in range(5)]
    assert all(w is not None for w in waits)
    assert waits[-1] == pytest.approx(0.0404, abs=0.01)
    assert bucket.commit() == 0.0
    assert FileTokenBucket(path=tmp_path / "sms", rate_per_s=100).reserve(max_wait_s=0) is None


def test_a_send_that_would_crowd_a_second_is_held_back_even_when_slots_came_late(
    client: redis.Redis,
) -> None:
    bucket = RedisTokenBucket(client=client, key="test:late", rate_per_s=5, margin_s=0.01)
    bucket.reset()
    # Five sends committed in a burst (their slots were late and bunched up)...
    assert [bucket.commit() for _ in range(5)] == [0.0] * 5
    # ...so a sixth must wait until one second (plus the margin) after the first.
    hold = bucket.commit()
    assert 0.95 < hold <= 1.01
    held: list[float] = []

    def sleep(seconds: float) -> None:
        held.append(seconds)
        time.sleep(seconds)

    assert rate_limiter_acquire(limiter=bucket, max_wait_s=5, sleep=sleep)
    assert sum(held) == pytest.approx(hold, abs=0.05)
