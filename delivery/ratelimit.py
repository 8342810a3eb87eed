"""A global send pace shared by every worker process: a Redis token bucket with no burst.

Twilio (and carriers) meter per second, and Celery's ``rate_limit`` is per worker, so the pace
lives in Redis. The bucket holds a single token (GCRA, "generic cell rate algorithm"): each
caller atomically reserves the next free slot, ``1 / rate`` after the previous one, and sleeps
until it. Slots are therefore evenly spaced and no one-second window ever holds more than ``rate``
of them, however many processes share the key. A bigger bucket would allow a burst of ``capacity``
on top of the rate in one second, which is exactly what "never above it" forbids.

Sends happen a little after their slots (the reply's trip back, the sleep's overshoot), and not
all equally late: if slot 0 went out 3 ms late and slot ``rate`` on time, ``rate + 1`` sends
would sit inside one second. So slots are spaced ``(1 + lateness_s) / rate`` apart: ``rate + 1``
slots then span ``1 + lateness_s`` seconds, and up to ``lateness_s`` of uneven lateness still
leaves every one-second window at or below the rate. The price is a sustained pace ``lateness_s``
(1% by default) under the configured rate.

The Lua script runs atomically in Redis and reads Redis's own clock, so process clocks never
matter. The embedded run mode has no Redis; it shares the same schedule through a file lock.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import redis

# KEYS[1]: the schedule key. ARGV[1]: slot interval in microseconds; ARGV[2]: the longest wait
# (microseconds) a caller accepts. Returns the wait in microseconds for a reserved slot, or -1
# when the next slot is further away than the caller accepts (nothing is reserved then).
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


class RateLimiter(Protocol):
    rate_per_s: float

    def reserve(self, *, max_wait_s: float) -> float | None:
        """Reserve the next slot: seconds to wait until it, or None if it is too far away."""
        ...


class RedisTokenBucket:
    """The shared pace, in Redis. ``key`` names the budget (one per sender or account)."""

    def __init__(
        self, *, client: redis.Redis, key: str, rate_per_s: float, lateness_s: float = 0.01
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.client = client
        self.key = key
        self.rate_per_s = rate_per_s
        self._interval_us = round(1_000_000 * (1 + lateness_s) / rate_per_s)
        self._script = client.register_script(_RESERVE_LUA)

    def reserve(self, *, max_wait_s: float) -> float | None:
        args = [self._interval_us, int(max_wait_s * 1e6)]
        wait_us = int(self._script(keys=[self.key], args=args))
        return None if wait_us < 0 else wait_us / 1_000_000

    def reset(self) -> None:
        self.client.delete(self.key)


class FileTokenBucket:
    """The same schedule for one host without Redis (embedded mode): a file under a lock."""

    def __init__(self, *, path: Path, rate_per_s: float, lateness_s: float = 0.01) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.path = path
        self.rate_per_s = rate_per_s
        self._interval = (1 + lateness_s) / rate_per_s
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


def rate_limiter_acquire(
    *,
    limiter: RateLimiter,
    max_wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait for the next slot; False (nothing reserved) when it is more than ``max_wait_s`` off."""
    wait = limiter.reserve(max_wait_s=max_wait_s)
    if wait is None:
        return False
    if wait > 0:
        sleep(wait)
    return True


def sms_rate_limiter(*, rate_per_s: float | None = None, key: str = "sms:global") -> RateLimiter:
    """The SMS pace configured in settings, in Redis (or a file in embedded mode)."""
    from django.conf import settings

    rate = rate_per_s if rate_per_s is not None else settings.DELIVERY_SMS_RATE_PER_S
    if settings.BROKER_IS_EMBEDDED:
        return FileTokenBucket(path=Path(settings.VAR_DIR) / "ratelimit" / key, rate_per_s=rate)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    return RedisTokenBucket(client=client, key=f"continuity:ratelimit:{key}", rate_per_s=rate)
