"""delivery.push_per_s: web pushes per second through WebPushSender over 2 processes.

Each push is separately encrypted (RFC 8291) for its subscription and VAPID-signed (cached per
origin), sent in 1,000-message chunks as a dispatch task would, to the sandbox push service in
its own process (which checks VAPID and decrypts every body). The floor is a bare aiohttp client
posting pre-encrypted bodies to the same fake at the same concurrency, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from typing import Any

import requests

from benchmarks._common import emit, setup_django, sized

PROCESSES = 2
CHUNK = 1000


def _serve(queue: Any, subscriptions: int) -> None:
    from sandbox.push import PushServiceFake

    fake = PushServiceFake(keep_payloads=False).start()
    subs = [fake.subscription_create() for _ in range(subscriptions)]
    queue.put((fake.url, subs))
    while True:
        time.sleep(1)


def _floor(url: str, subs: list[dict[str, Any]], n: int, concurrency: int, sync: Any) -> None:
    setup_django()
    import aiohttp
    from pywebpush import WebPusher

    from delivery.providers.webpush import vapid_headers, vapid_key_load

    headers = {
        **vapid_headers(vapid=vapid_key_load(), origin=url, subject="mailto:bench@example.com"),
        "Urgency": "normal",
        "Topic": "bench",
    }
    data = b'{"title":"Shop","body":"Facebook is down; reach us here.","url":"","icon":""}'
    bodies = []
    for i in range(n):
        prepared = WebPusher(subs[i % len(subs)])._prepare_send_data(data, headers, ttl=3600)
        bodies.append((prepared["endpoint"], prepared["data"], dict(prepared["headers"])))

    async def run() -> int:
        ok = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker(start: int) -> None:
                nonlocal ok
                for endpoint, body, hdrs in bodies[start::concurrency]:
                    async with session.post(endpoint, data=body, headers=hdrs) as response:
                        await response.read()
                        ok += response.status == 201

            _start_together(sync)
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            return ok

    sync[2].put(asyncio.run(run()))


def _measured(url: str, subs: list[dict[str, Any]], n: int, concurrency: int, sync: Any) -> None:
    setup_django()
    from django.conf import settings

    from delivery.providers.base import OutboundMessage, PushContent, PushKeys, Sent
    from delivery.providers.webpush import WebPushSender

    # The fake listens on a port of its own: it is the sandbox push service the guard lets through.
    settings.SANDBOX_PUSH_BASE_URL = url

    content = PushContent(
        title="{{ shop }}", body="Facebook is down; reach us here, {{ first_name }}.", topic="b"
    )
    messages = [
        OutboundMessage(
            delivery_id=i,
            to=subs[i % len(subs)]["endpoint"],
            merge_fields={"shop": "Shop", "first_name": f"Ann {i}"},
            push_keys=PushKeys(**subs[i % len(subs)]["keys"]),
        )
        for i in range(n)
    ]
    sender = WebPushSender(concurrency=concurrency, subject="mailto:bench@example.com")
    _start_together(sync)
    sent = 0
    for offset in range(0, n, CHUNK):
        outcomes = sender.send_batch(content=content, messages=messages[offset : offset + CHUNK])
        sent += sum(isinstance(o, Sent) for o in outcomes)
    sync[2].put(sent)


def _start_together(sync: Any) -> None:
    """Tell the parent this process is ready, then wait for the common start signal."""
    ready, go, _ = sync
    ready.put(1)
    go.wait(timeout=300)


def _run(target: Any, url: str, subs: list[dict[str, Any]], n: int, conc: int) -> tuple[float, int]:
    """Start PROCESSES children, release them together once all are ready, time them as one."""
    ctx = mp.get_context("spawn")
    sync = (ctx.Queue(), ctx.Event(), ctx.Queue())
    procs = [ctx.Process(target=target, args=(url, subs, n, conc, sync)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for _ in procs:
        sync[0].get(timeout=300)
    started = time.perf_counter()
    sync[1].set()
    ok = sum(sync[2].get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(timeout=30)
    return elapsed, ok


def main() -> None:
    setup_django()
    from django.conf import settings

    per_process = sized(full=3_000, small=1_000)
    # The machine is shared and neighbours' jobs come and go: floor and measured runs alternate,
    # and each figure is the best of its rounds (the one least disturbed), all rounds reported.
    rounds = sized(full=5, small=1)
    concurrency = settings.DELIVERY_PUSH_CONCURRENCY
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    server = ctx.Process(target=_serve, args=(queue, 1000), daemon=True)
    server.start()
    try:
        url, subs = queue.get(timeout=60)
        floors, measured, floor_ok, sent = [], [], 0, 0
        for _ in range(rounds):
            seconds, ok = _run(_floor, url, subs, per_process, concurrency)
            floors.append(ok / seconds)
            floor_ok += ok
            seconds, ok = _run(_measured, url, subs, per_process, concurrency)
            measured.append(ok / seconds)
            sent += ok
        stats = requests.get(f"{url}/__sandbox__/stats", timeout=10).json()
    finally:
        server.terminate()
        server.join(timeout=10)
    total = per_process * PROCESSES * rounds
    emit(
        "delivery.push_per_s",
        max(measured),
        "pushes/s",
        target=">= 2,000 pushes/s over 2 cores, ratio_to_floor >= 0.7",
        floor=max(floors),
        pushes=total,
        sent=sent,
        floor_ok=floor_ok,
        fake_accepted=stats["accepted"],
        fake_rejected=stats["rejected"],
        processes=PROCESSES,
        concurrency=concurrency,
        rounds=[round(m) for m in measured],
        floor_rounds=[round(f) for f in floors],
    )
    assert sent == total and floor_ok == total, json.dumps(stats)


if __name__ == "__main__":
    main()
