"""delivery.sms_rate_error_pct: the global SMS pace across 2 worker processes.

Two processes send through TwilioSmsSender, sharing one Redis token bucket configured at 100
messages/s, to the sandbox Twilio fake. The figure is how far the sustained rate (first to last
arrival at the fake) is from the configured rate, in percent; ``max_in_any_1s`` is the most
messages the fake received in any sliding one-second window, which must never exceed the rate.
"""

from __future__ import annotations

import multiprocessing as mp
import uuid
from typing import Any

from benchmarks._common import emit, setup_django, sized

RATE = 100.0
PROCESSES = 2


def _send(args: tuple[str, str, str, str, int], out: Any) -> None:
    url, sid, token, key, n = args
    setup_django()
    import redis
    from django.conf import settings

    from delivery.providers.base import OutboundMessage, Sent, SmsContent
    from delivery.providers.twilio_sms import TwilioSmsSender, twilio_client
    from delivery.ratelimit import RedisTokenBucket

    limiter = RedisTokenBucket(
        client=redis.Redis.from_url(settings.REDIS_URL),
        key=key,
        rate_per_s=RATE,
        margin_s=settings.DELIVERY_SMS_PACE_MARGIN_S,
    )
    sender = TwilioSmsSender(
        client=twilio_client(account_sid=sid, auth_token=token, base_url=url, timeout_s=5),
        limiter=limiter,
        status_callback_url="",
        max_wait_s=600,
    )
    messages = [
        OutboundMessage(delivery_id=i, to=f"+1415555{i % 10000:04d}", merge_fields={"n": str(i)})
        for i in range(n)
    ]
    outcomes = sender.send_batch(
        content=SmsContent(text="We are here, #{{ n }}"), messages=messages
    )
    out.put(sum(isinstance(o, Sent) for o in outcomes))


def max_in_window(stamps: list[float], window: float = 1.0) -> int:
    stamps = sorted(stamps)
    best = lo = 0
    for hi, stamp in enumerate(stamps):
        while stamp - stamps[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> None:
    setup_django()
    from sandbox.twilio import TwilioFake

    per_process = sized(full=1_500, small=150)
    key = f"bench:sms:{uuid.uuid4().hex}"
    with TwilioFake(send_callbacks=False) as fake:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=_send,
                args=((fake.url, fake.account_sid, fake.auth_token, key, per_process), out),
            )
            for _ in range(PROCESSES)
        ]
        for proc in procs:
            proc.start()
        sent = sum(out.get(timeout=600) for _ in procs)
        for proc in procs:
            proc.join(timeout=30)
        stamps = sorted(r.received_at for r in fake.requests_to("Messages.json"))
    sustained = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    error_pct = abs(sustained - RATE) / RATE * 100
    emit(
        "delivery.sms_rate_error_pct",
        error_pct,
        "%",
        target="within 2% of 100/s sustained, never above 100 in any 1-second window",
        configured_per_s=RATE,
        sustained_per_s=round(sustained, 2),
        max_in_any_1s=max_in_window(stamps),
        # The shortest time any 101 consecutive arrivals took: above 1 s means no window broke.
        tightest_101_span_s=round(
            min(b - a for a, b in zip(stamps, stamps[int(RATE) :], strict=False)), 4
        ),
        messages=len(stamps),
        sent=sent,
        processes=PROCESSES,
        seconds=round(stamps[-1] - stamps[0], 2),
    )


if __name__ == "__main__":
    main()
