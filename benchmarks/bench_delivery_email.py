"""delivery.email_recipients_per_s and delivery.worker_rss_mb: email deliveries end to end.

email_recipients_per_s: queued Delivery rows -> SendGrid fake 202s through deliveries_send_chunk
(claim, load, render, the configured anymail SendGrid backend, one POST per 1,000 recipients,
outcomes recorded), in 2 processes as a worker with concurrency 2 runs chunk tasks; the fake runs
in its own process. The floor is 2 bare requests sessions posting the very bodies anymail
produced, to the same fake, in the same run.

worker_rss_mb: peak RSS (VmHWM) of a real `celery worker --pool solo` process that sends N email
deliveries queued as dispatch queues them; a fresh worker per size, so the two peaks compare.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._common import (
    bench_database_prepare,
    emit,
    popen_tied,
    process_group_kill,
    request_bodies_captured,
    setup_django,
    sized,
    worker_production_env,
)
from benchmarks._deliveries import bench_contacts_ensure, bench_deliveries_queue

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-sendgrid-key"
PROCESSES = 2


def _serve(queue: Any) -> None:
    from sandbox.sendgrid import SendGridFake

    fake = SendGridFake(api_key=API_KEY, keep_bodies=False).start()
    queue.put(fake.url)
    while True:
        time.sleep(1)


def _contacts_ensure(count: int) -> list[int]:
    return bench_contacts_ensure(
        channel="email", count=count, address=lambda n: {"email": f"bench{n}@example.com"}
    )


def _queued(contact_ids: list[int]) -> list[int]:
    return bench_deliveries_queue(
        channel="email",
        contact_ids=contact_ids,
        email_subject="Hello {{ first_name }}",
        email_html="<p>Hi {{ first_name }}, our Instagram is down: 20% off today.</p>",
        email_text="Hi {{ first_name }}, our Instagram is down: 20% off today.",
    )


def _send_share(url: str, chunks: list[list[int]], sync: Any) -> None:
    """One worker process's share: send its chunks as the chunk task would, keep the bodies."""
    from django.conf import settings
    from django.db import connections

    from delivery.dispatch import deliveries_send_chunk
    from delivery.senders import channel_sender

    connections.close_all()  # forked: never share the parent's PostgreSQL connection
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_API_URL": f"{url}/v3/",
        "SENDGRID_API_KEY": API_KEY,
    }
    channel_sender.cache_clear()
    barrier, results = sync
    with request_bodies_captured() as bodies:
        barrier.wait()
        started = time.perf_counter()
        for chunk in chunks:
            deliveries_send_chunk(channel="email", ids=chunk)
        ended = time.perf_counter()
    results.put((started, ended, bodies))


def _post_share(url: str, bodies: list[bytes], sync: Any) -> None:
    """The floor's share: a bare requests session posting the very same bodies."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    barrier, results = sync
    barrier.wait()
    started = time.perf_counter()
    for body in bodies:
        response = session.post(f"{url}/v3/mail/send", data=body, headers=headers, timeout=30)
        assert response.status_code == 202, response.text[:200]
    results.put((started, time.perf_counter(), []))


def _together(target: Any, url: str, shares: list[Any]) -> tuple[float, list[bytes]]:
    """Run one process per share, started on one barrier; wall time from first start to last end."""
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(len(shares)), ctx.Queue()
    processes = [
        ctx.Process(target=target, args=(url, share, (barrier, results))) for share in shares
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    wall = max(end for _, end, _ in outcomes) - min(start for start, _, _ in outcomes)
    return wall, [body for _, _, bodies in outcomes for body in bodies]


def _throughput(url: str, contact_ids: list[int]) -> tuple[float, float, int]:
    from django.conf import settings
    from django.db import connections

    from delivery.dispatch import chunked
    from delivery.models import Delivery

    ids = _queued(contact_ids)
    chunks = list(chunked(ids, settings.DELIVERY_CHUNK_SIZE))
    connections.close_all()
    # A worker runs one process per core (concurrency 2 here): chunks are dealt out in turn, as
    # the broker would hand them to the two pool processes.
    measured, bodies = _together(_send_share, url, [chunks[k::PROCESSES] for k in range(PROCESSES)])
    sent = Delivery.objects.filter(id__in=ids, status="sent").count()
    floor, _ = _together(_post_share, url, [bodies[k::PROCESSES] for k in range(PROCESSES)])
    return len(ids) / measured, len(ids) / floor, sent


def _worker_peak_rss_mb(url: str, contact_ids: list[int]) -> tuple[float, float]:
    from continuity.celery import app
    from delivery.dispatch import chunked, deliveries_enqueue
    from delivery.models import Delivery

    with app.connection_for_write() as conn:
        for queue in app.conf.task_queues:
            queue.bind(conn.default_channel).purge()
    env = {
        **os.environ,
        "SENDGRID_API_URL": f"{url}/v3/",
        "SENDGRID_API_KEY": API_KEY,
        "DJANGO_SETTINGS_MODULE": "continuity.settings_test",
        **worker_production_env(),
    }
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "continuity",
        "worker",
        "--pool",
        "solo",
        "--queues",
        "email",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"bench-rss-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]
    worker = popen_tied(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ids = _queued(contact_ids)
        mine = Delivery.objects.filter(message_id=Delivery.objects.get(pk=ids[0]).message_id)
        # Rows are queued already: release them again as tasks (the enqueue path tasks use), in
        # steps the size of a reroute's planning slices.
        mine.update(status="planned")
        started = time.perf_counter()
        for step in chunked(ids, 50_000):
            deliveries_enqueue(ids=step)
        deadline = started + 900
        while mine.filter(status__in=["queued", "sending"]).exists():
            if time.perf_counter() > deadline or worker.poll() is not None:
                raise SystemExit("the worker did not finish its deliveries")
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        status = Path(f"/proc/{worker.pid}/status").read_text()
        peak_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")
        )
    finally:
        process_group_kill(worker)
    return peak_kb / 1024, elapsed


def main() -> None:
    bench_database_prepare("continuity_bench_delivery_email")
    setup_django()
    import warnings

    from anymail.exceptions import AnymailNotSupportedWarning

    warnings.simplefilter("ignore", AnymailNotSupportedWarning)
    recipients = sized(full=50_000, small=2_000)
    small_n, large_n = sized(full=10_000, small=1_000), sized(full=1_000_000, small=2_000)
    contact_ids = _contacts_ensure(max(recipients, large_n))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    server = ctx.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    try:
        url = queue.get(timeout=60)
        value, floor, sent = _throughput(url, contact_ids[:recipients])
        emit(
            "delivery.email_recipients_per_s",
            value,
            "recipients/s",
            target=">= 10,000 recipients/s, ratio_to_floor >= 0.7",
            floor=floor,
            recipients=recipients,
            processes=PROCESSES,
            sent=sent,
        )
        assert sent == recipients, f"{sent} of {recipients} sent"
        rss_small, t_small = _worker_peak_rss_mb(url, contact_ids[:small_n])
        rss_large, t_large = _worker_peak_rss_mb(url, contact_ids[:large_n])
        emit(
            "delivery.worker_rss_mb",
            rss_large,
            "MB",
            target="flat: peak RSS for the large run close to the small run's",
            deliveries=large_n,
            seconds=round(t_large, 1),
            small_deliveries=small_n,
            small_rss_mb=round(rss_small, 1),
            small_seconds=round(t_small, 1),
            growth_mb=round(rss_large - rss_small, 1),
        )
    finally:
        server.terminate()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
