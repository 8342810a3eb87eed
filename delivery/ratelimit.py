"""A global send pace shared by every worker process: a Redis token bucket, never above the rate.

Twilio (and carriers) meter per second, and Celery's ``rate_limit`` is per worker, so the pace
lives in Redis, in two atomic Lua steps that read Redis's own clock (worker clocks never matter):

1. ``reserve``: a token bucket of one token (GCRA). Each caller takes the next free slot,
   ``1 / rate`` after the previous one, and sleeps until it. Slots are evenly spaced, so sends are
   smooth rather than bursty. A bigger bucket would allow a burst of ``capacity`` on top of the
   rate in one second, which is exactly what "never above the rate" forbids.
2. ``commit``: right before the send, the caller records the moment in a list of the last
   ``rate`` sends, and is refused (told how long to wait) while the send ``rate`` places back is
   less than one second plus ``margin_s`` ago. Evenly spaced slots alone are not enough: sends go
   out a little after their slots and not all equally late (a busy machine, a GC pause), and if
   slot 0 went out 5 ms late and slot 100 on time, 101 sends would sit in one second. The commit
   check makes the guarantee hold for the moments sends actually start; ``margin_s`` covers the
   last stretch from there to the provider reading the request (measured at the Twilio fake).

The price is a sustained pace about ``margin_s`` (DELIVERY_SMS_PACE_MARGIN_S, 12 ms: 1.2%) under
the configured rate. The
embedded run mode has no Redis; it spaces slots ``(1 + margin_s) / rate`` apart in a file under a
lock, which is the same guarantee without the lateness correction.
"""

from __future__ import annotations

import fcntl
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import redis

from delivery.providers.progress import SendInterrupted

# KEYS[1]: the schedule. ARGV[1]: slot interval (us); ARGV[2]: the longest wait (us) a caller
# accepts. Returns the wait (us) until the reserved slot, or -1 when the next free slot is
# further away than the caller accepts (nothing is reserved then).
_RESERVE_LUA = """
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return -1 end
local ttl_ms = math.floor((wait + interval) / 1000) + 1000
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ttl_ms)
return wait
"""

# KEYS[1]: the last ``limit`` send times, newest first. ARGV[1]: window (us); ARGV[2]: limit.
# Returns 0 when this send is recorded, else the wait (us) before it may go.
_COMMIT_LUA = """
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and now - tonumber(oldest) < window then
  return window - (now - tonumber(oldest))
end
redis.call('LPUSH', KEYS[1], tostring(now))
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
return 0
"""


PACE_UNAVAILABLE = "pace_unavailable"


class PaceUnavailable(SendInterrupted):
    """The shared pace could not be asked (Redis down or slow): no slot, so no request leaves.

    A sender stops there and the rows it has not sent go back to the queue; sending without the
    pace would break the rate every other worker keeps to.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(PACE_UNAVAILABLE, detail)


class RateLimiter(Protocol):
    rate_per_s: float

    def reserve(self, *, max_wait_s: float) -> float | None:
        """Reserve the next slot: seconds to wait until it, or None if it is too far away."""
        ...

    def commit(self) -> float:
        """Record a send starting now: 0.0, or the seconds to wait before it may start."""
        ...


class RedisTokenBucket:
    """The shared pace, in Redis. ``key`` names the budget (one per sender or account)."""

    def __init__(
        self, *, client: redis.Redis, key: str, rate_per_s: float, margin_s: float = 0.01
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.client = client
        self.key = key
        self.rate_per_s = rate_per_s
        self._interval_us = round(1_000_000 / rate_per_s)
        # At most ``limit`` sends in any window of limit / rate seconds (1 s for whole rates).
        self._limit = max(1, math.floor(rate_per_s))
        self._window_us = round(1_000_000 * (self._limit / rate_per_s + margin_s))
        self._reserve = client.register_script(_RESERVE_LUA)
        self._commit = client.register_script(_COMMIT_LUA)

    def reserve(self, *, max_wait_s: float) -> float | None:
        args = [self._interval_us, int(max_wait_s * 1e6)]
        try:
            wait_us = int(self._reserve(keys=[self.key], args=args))
        except redis.RedisError as exc:
            raise PaceUnavailable(f"reserve: {type(exc).__name__}: {exc}"[:500]) from exc
        return None if wait_us < 0 else wait_us / 1_000_000

    def commit(self) -> float:
        args = [self._window_us, self._limit]
        try:
            held_us = int(self._commit(keys=[self.key + ":sent"], args=args))
        except redis.RedisError as exc:
            raise PaceUnavailable(f"commit: {type(exc).__name__}: {exc}"[:500]) from exc
        return held_us / 1_000_000

    def reset(self) -> None:
        self.client.delete(self.key, self.key + ":sent")


class FileTokenBucket:
    """The same pace for one host without Redis (embedded mode): a file under a lock."""

    def __init__(self, *, path: Path, rate_per_s: float, margin_s: float = 0.01) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.path = path
        self.rate_per_s = rate_per_s
        self._interval = (1 + margin_s) / rate_per_s
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)

    def reserve(self, *, max_wait_s: float) -> float | None:
        with self.path.open("r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                now = time.time()
                raw = handle.read().strip()
                tat = max(now, float(raw) if raw else 0.0)
                wait = tat - now
                if wait > max_wait_s:
                    return None
                handle.seek(0)
                handle.truncate()
                handle.write(repr(tat + self._interval))
                return wait
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def commit(self) -> float:
        return 0.0


def rate_limiter_acquire(
    *,
    limiter: RateLimiter,
    max_wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    commit: bool = True,
) -> bool:
    """Wait for a slot (and commit the send); False (nothing taken) past ``max_wait_s``.

    With ``commit=False`` the caller commits itself, as close to the wire as it can
    (``rate_limiter_commit``): the less work between the two, the less the margin must cover.
    """
    wait = limiter.reserve(max_wait_s=max_wait_s)
    if wait is None:
        return False
    if wait > 0:
        sleep(wait)
    if commit:
        rate_limiter_commit(limiter=limiter, sleep=sleep)
    return True


def rate_limiter_commit(
    *, limiter: RateLimiter, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Record a send starting now, first waiting while it would crowd a one-second window."""
    while (hold := limiter.commit()) > 0:
        sleep(hold)


def sms_rate_limiter(*, rate_per_s: float | None = None, key: str = "sms:global") -> RateLimiter:
    """The SMS pace configured in settings, in Redis (or a file in embedded mode)."""
    from django.conf import settings

    rate = rate_per_s if rate_per_s is not None else settings.DELIVERY_SMS_RATE_PER_S
    margin = settings.DELIVERY_SMS_PACE_MARGIN_S
    if settings.BROKER_IS_EMBEDDED:
        path = Path(settings.VAR_DIR) / "ratelimit" / key
        return FileTokenBucket(path=path, rate_per_s=rate, margin_s=margin)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    # The pace lives in the same Redis namespace as the broker queues and the cache (one per test
    # run), so two runs sharing a Redis never slow each other down.
    prefix = settings.REDIS_KEY_PREFIX
    return RedisTokenBucket(
        client=client, key=f"{prefix}continuity:ratelimit:{key}", rate_per_s=rate, margin_s=margin
    )
