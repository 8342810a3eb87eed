"""delivery.unknown_after_kill: rows left `unknown` after a SIGKILL in the middle of a paced SMS
chunk of 1,000.

A real `celery worker` (concurrency 1: one SMS request at a time) sends one chunk of 1,000 SMS
through the Redis pace at 50/s to the Twilio fake. Once the fake has taken a fifth of them, the
worker's process group is SIGKILLed. A second worker starts, and the sweeper runs as beat would
(with the claim-stale threshold at 2 s instead of 45 s, so the run takes seconds, not a minute):
the killed chunk's claim is resolved, the rows whose request may have left become `unknown`, the
others go back to the queue and the new worker sends them. The sweeper then hands the `unknown`
rows to the SMS queue, whose worker reconciles them with the fake's Messages list
(delivery/reconcile.py; the "never left" delay cut to 1 + 2 + 1 s from 5 + 10 + 60 s): a listed
one becomes sent with its SID, one surely never listed is queued again and sent.

The figure is the count of rows that became `unknown` after the kill (at most the requests in
flight). The line also reports the rows still `unknown` at the end and, of those, how many the
fake never received (`unknown_never_received`, target 0), what reconciliation did, duplicates at
the fake (target 0), and how long the recovery took. Target: at most the sender's concurrency (1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from benchmarks._common import (
    ROOT,
    bench_database_prepare,
    emit,
    popen_tied,
    process_group_kill,
    redis_namespace_fresh,
    setup_django,
    sized,
    worker_production_env,
)
from benchmarks._deliveries import bench_contacts_ensure, bench_deliveries_queue

RATE_PER_S = 50


def _worker(env: dict[str, str]) -> subprocess.Popen[str]:
    worker = popen_tied(
        [sys.executable, "-m", "celery", "-A", "continuity", "worker", "--concurrency", "1",
         "--queues", "sms", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert worker.stdout is not None
    for line in worker.stdout:
        if " ready." in line:
            break
    # Keep reading its output, or a full pipe would stall the worker.
    popen_tied(["cat"], stdin=worker.stdout, stdout=subprocess.DEVNULL)
    return worker


def _wait(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.2)


def main() -> None:
    bench_database_prepare("continuity_bench_unknown_after_kill")
    redis_namespace_fresh("unknown-kill")
    setup_django()
    from django.test import override_settings

    from delivery.dispatch import deliveries_enqueue
    from delivery.models import Delivery, DeliveryEvent
    from delivery.sweeper import deliveries_sweep
    from delivery.tasks import send_chunk_enqueue
    from sandbox.twilio import TwilioFake

    # The small run (the suite's smoke) only proves the script works: a short chunk, a fast pace.
    count = sized(full=1_000, small=100)
    rate_per_s = sized(full=RATE_PER_S, small=200)
    kill_after = count // 5
    fake = TwilioFake(
        account_sid="AC" + "6" * 32,
        auth_token="bench-kill-token",  # noqa: S106 - the fake's own
        send_callbacks=False,
    ).start()
    contact_ids = bench_contacts_ensure(
        channel="sms", count=count, address=lambda n: {"phone": f"+1415{n:07d}"}
    )
    ids = bench_deliveries_queue(
        channel="sms", contact_ids=contact_ids, sms_text="Hi {{ first_name }}"
    )
    # As a reroute leaves them: deliveries_enqueue queues them and sends the chunk's task.
    Delivery.objects.filter(id__in=ids).update(status="planned")
    env = {
        **os.environ,
        **worker_production_env(),
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "DELIVERY_SMS_RATE_PER_S": str(rate_per_s),
        "DELIVERY_CHUNK_SIZE": str(count),
        "DELIVERY_CLAIM_HEARTBEAT_S": "0.5",
        # Reconciliation's "never left" rule, 1 + 2 + 1 s (the sweep below picks rows with the
        # same numbers; the worker does the lookups).
        "TWILIO_TIMEOUT_S": "2",
        "DELIVERY_SMS_LEAVE_MAX_S": "1",
        "DELIVERY_SMS_RECONCILE_LAG_S": "1",
        "REROUTE_QUIET_HOURS_SMS": "",
        # The worker's " ready." line, which _worker waits for, is logged at INFO.
        "LOG_LEVEL": "info",
    }
    first = _worker(env)
    second: subprocess.Popen[str] | None = None
    try:
        deliveries_enqueue(ids=ids)
        _wait(lambda: fake.accepted >= kill_after, timeout=120, what=f"{kill_after} SMS")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        killed_at = time.monotonic()
        received_at_kill = {m.to for m in list(fake.messages)}
        second = _worker(env)
        sweep_settings = {
            "DELIVERY_CLAIM_STALE_S": 2,
            "DELIVERY_QUEUED_STALE_S": 1,
            "TWILIO_TIMEOUT_S": 2.0,
            "DELIVERY_SMS_LEAVE_MAX_S": 1.0,
            "DELIVERY_SMS_RECONCILE_LAG_S": 1.0,
        }

        def settled() -> bool:
            with override_settings(**sweep_settings):
                deliveries_sweep(send=send_chunk_enqueue)
            return not Delivery.objects.filter(
                id__in=ids, status__in=["planned", "queued", "sending", "unknown"]
            ).exists()

        _wait(settled, timeout=count / rate_per_s + 120, what="every row settled")
        recovered_s = time.monotonic() - killed_at
    finally:
        for worker in (first, second):
            if worker is not None:
                process_group_kill(worker, timeout=30)
        fake.stop()
    statuses = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
    phones = dict(Delivery.objects.filter(id__in=ids).values_list("id", "contact__phone"))
    unknown = list(
        Delivery.objects.filter(id__in=ids, status="unknown").values_list("id", flat=True)
    )
    received = Counter(m.to for m in list(fake.messages))
    # Every row that was ever unknown in this run (the timeline keeps it after reconciliation).
    became_unknown = set(
        DeliveryEvent.objects.filter(delivery_id__in=ids, status="unknown").values_list(
            "delivery_id", flat=True
        )
    )
    details = Counter(
        DeliveryEvent.objects.filter(delivery_id__in=became_unknown).values_list(
            "detail", flat=True
        )
    )
    emit(
        "delivery.unknown_after_kill",
        len(became_unknown),
        "rows",
        target="<= the sender's concurrency (1) after a SIGKILL mid paced SMS chunk of 1,000; "
        "0 left unknown that the fake never received",
        chunk=count,
        received_before_kill=len(received_at_kill),
        unknown_at_end=len(unknown),
        unknown_never_received=sum(1 for i in unknown if str(phones[i]) not in received),
        became_unknown_never_received=sum(
            1 for i in became_unknown if str(phones[i]) not in received_at_kill
        ),
        reconciled_sent=sum(n for d, n in details.items() if d.startswith("reconciled:")),
        reconciled_requeued=details.get("retry: reconciled_never_left", 0),
        duplicates=sum(1 for n in received.values() if n > 1),
        statuses=dict(statuses),
        recovered_s=round(recovered_s, 1),
    )


if __name__ == "__main__":
    main()
