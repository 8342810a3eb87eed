"""delivery.sms_app_per_s: the app side of SMS sending alone, the shared pace switched off.

Queued SMS Delivery rows -> Twilio fake 201s through deliveries_send_chunk with the real twilio
library (claim, render, GSM-7/UCS-2 segment count, one Messages.json POST per message, outcomes
recorded), in one process; the fake runs in its own process. The limiter is replaced by one that
never waits, so what is measured is our code plus the client, not the configured pace. The floor
is a bare requests session posting the same form bodies to the same fake in the same run.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks._common import (
    bench_database_prepare,
    emit,
    request_bodies_captured,
    setup_django,
    sized,
)
from benchmarks._deliveries import bench_contacts_ensure, bench_deliveries_queue

SID = "AC" + "5" * 32
TOKEN = "bench-twilio-token"  # noqa: S105 - the fake's own credential


class _NoLimit:
    rate_per_s = float("inf")

    def reserve(self, *, max_wait_s: float) -> float | None:
        return 0.0

    def commit(self) -> float:
        return 0.0


def _serve(queue: Any) -> None:
    from sandbox.twilio import TwilioFake

    fake = TwilioFake(
        account_sid=SID, auth_token=TOKEN, send_callbacks=False, keep_bodies=False
    ).start()
    queue.put(fake.url)
    while True:
        time.sleep(1)


def _queued(count: int) -> list[int]:
    contact_ids = bench_contacts_ensure(
        channel="sms", count=count, address=lambda n: {"phone": f"+1415{n:07d}"}
    )
    return bench_deliveries_queue(
        channel="sms",
        contact_ids=contact_ids,
        sms_text="Hi {{ first_name }}, Instagram is down: 20% off.",
    )


def main() -> None:
    bench_database_prepare("continuity_bench_delivery_sms")
    setup_django()
    from django.conf import settings

    import delivery.dispatch
    from delivery.dispatch import chunked, deliveries_send_chunk
    from delivery.models import Delivery
    from delivery.providers.twilio_sms import TwilioSmsSender, twilio_client

    # Quiet hours stay on (their check is part of the claim's cost) but twelve hours from now:
    # the figure must not depend on the time of day the benchmark runs at.
    far = datetime.now(UTC) + timedelta(hours=12)
    settings.REROUTE_QUIET_HOURS = {"sms": f"{far:%H:%M}-{far + timedelta(hours=1):%H:%M}"}
    settings.REROUTE_DEFAULT_TIMEZONE = "UTC"
    count = sized(full=5_000, small=300)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    server = ctx.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    try:
        url = queue.get(timeout=60)
        sender = TwilioSmsSender(
            client=twilio_client(account_sid=SID, auth_token=TOKEN, base_url=url),
            limiter=_NoLimit(),
            messaging_service_sid="",
            from_number="+15005550006",
            status_callback_url="",
        )
        delivery.dispatch.channel_sender = lambda channel: sender  # type: ignore[assignment]
        ids = _queued(count)
        with request_bodies_captured() as bodies:
            started = time.perf_counter()
            for chunk in chunked(ids, settings.DELIVERY_CHUNK_SIZE):
                deliveries_send_chunk(channel="sms", ids=chunk)
            measured = time.perf_counter() - started
        sent = Delivery.objects.filter(id__in=ids, status="sent").count()
        session = requests.Session()
        session.auth = (SID, TOKEN)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        target = f"{url}/2010-04-01/Accounts/{SID}/Messages.json"
        started = time.perf_counter()
        for body in bodies:
            response = session.post(target, data=body, headers=headers, timeout=30)
            assert response.status_code == 201, response.text[:200]
        floor = time.perf_counter() - started
    finally:
        server.terminate()
        server.join(timeout=10)
    emit(
        "delivery.sms_app_per_s",
        count / measured,
        "messages/s",
        target=">= 500 messages/s (limiter off)",
        floor=len(bodies) / floor,
        messages=count,
        sent=sent,
    )
    assert sent == count, f"{sent} of {count} sent"


if __name__ == "__main__":
    main()
