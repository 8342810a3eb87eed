"""retention.receipts_deleted_per_s: the retention run (continuity/retention.py) deleting expired
provider webhook receipts, 1,000,000 of them at full scale, in its own PostgreSQL database.

The table holds two workspaces' receipts and install-level ones, written over 90 days in id order
(as the webhook writes them), each with a SendGrid-sized JSON body. One workspace keeps them 40
days, the other and the install 30 (the default): about 2/3 of the rows are due. While the run
deletes, a writer thread keeps updating receipts (as the re-apply pass and the webhook do) and
records how long its statements waited: the run's row locks (one batch at a time, SKIP LOCKED on
its side) are the only thing it can wait for. Reported: rows deleted per second over the whole
run, the longest batch transaction, the writer's longest wait, and that exactly the due rows went.
"""

from __future__ import annotations

import os
import random
import threading
import time

from benchmarks._common import emit, setup_django, sized
from benchmarks.bench_crm_import import bench_database

POPULATE = """
INSERT INTO delivery_providerreceipt
    (workspace_id, provider, kind, headers, body, body_truncated, verdict, status_code, reason,
     matched, pending, attempts, created_at, updated_at)
SELECT CASE g %% 3 WHEN 0 THEN %(a)s WHEN 1 THEN %(b)s ELSE NULL END,
       'sendgrid', 'events', '{}'::jsonb,
       '[{"email":"person' || g || '@example.com","event":"delivered","sg_event_id":"'
           || md5(g::text) || '","timestamp":1700000000,"anymail_id":"' || md5(g::text || 'a')
           || '","smtp-id":"<' || md5(g::text || 's') || '@example.com>"}]',
       false, 'applied', 200, '', 1, '[]'::jsonb, 0,
       now() - interval '90 days' + (g * interval '90 days' / %(n)s),
       now() - interval '90 days' + (g * interval '90 days' / %(n)s)
FROM generate_series(1, %(n)s) g
"""


def main() -> None:
    n = sized(full=1_000_000, small=20_000)
    with bench_database("continuity_bench_retention") as url:
        os.environ["DATABASE_URL"] = url
        setup_django()
        from django.db import connection

        from continuity import retention_rules as rules
        from continuity.models import Workspace
        from continuity.retention import retention_period_set, retention_run

        a = Workspace.objects.create(slug="bench-a", name="A")
        b = Workspace.objects.create(slug="bench-b", name="B")
        retention_period_set(workspace=a, kind_key=rules.PROVIDER_RECEIPTS, days=40)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(POPULATE, {"a": a.pk, "b": b.pk, "n": n})
        connection.set_autocommit(True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE delivery_providerreceipt")
            cursor.execute(
                "SELECT count(*) FROM delivery_providerreceipt WHERE "
                "created_at < now() - CASE WHEN workspace_id = %s THEN interval '40 days' "
                "ELSE interval '30 days' END",
                [a.pk],
            )
            due = int(cursor.fetchone()[0])
            cursor.execute("SELECT min(id), max(id) FROM delivery_providerreceipt")
            low, high = cursor.fetchone()
        load_s = time.perf_counter() - started

        waits: list[float] = []
        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(url, low, high, stop, waits))
        writer.start()
        try:
            t0 = time.perf_counter()
            report = retention_run(kinds=[rules.PROVIDER_RECEIPTS], max_seconds=3600)
            elapsed = time.perf_counter() - t0
        finally:
            stop.set()
            writer.join()
        # SKIP LOCKED passes over a row the writer holds at that instant: the next run takes it
        # (the writer has stopped), and the figure says how many waited for it.
        after = retention_run(kinds=[rules.PROVIDER_RECEIPTS], max_seconds=3600)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM delivery_providerreceipt")
            left = int(cursor.fetchone()[0])
    deleted = report.deleted.get(rules.PROVIDER_RECEIPTS, 0)
    skipped_locked = after.deleted.get(rules.PROVIDER_RECEIPTS, 0)
    assert not report.interrupted, report.interrupted
    assert deleted + skipped_locked == due, (deleted, skipped_locked, due)
    assert skipped_locked <= 10, skipped_locked
    assert left == n - due, (left, n, due)
    emit(
        "retention.receipts_deleted_per_s",
        deleted / elapsed,
        "rows/s",
        target="deletes in short batches: no transaction or lock wait near a second",
        receipts=n,
        deleted=deleted,
        skipped_locked_then_deleted=skipped_locked,
        kept=left,
        run_s=round(elapsed, 2),
        batches=report.batches,
        batch_rows=int(os.environ.get("RETENTION_BATCH", "2000")),
        max_batch_transaction_s=round(report.max_batch_s, 4),
        writer_statements=len(waits),
        writer_max_wait_s=round(max(waits, default=0.0), 4),
        load_s=round(load_s, 1),
    )


def _writer(url: str, low: int, high: int, stop: threading.Event, waits: list[float]) -> None:
    """Updates receipts across the table (old and new) until told to stop, timing each."""
    import psycopg

    rng = random.Random(19)
    dsn = url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            pk = rng.randint(low, high)
            t0 = time.perf_counter()
            conn.execute(
                "UPDATE delivery_providerreceipt SET attempts = attempts + 1 WHERE id = %s", [pk]
            )
            waits.append(time.perf_counter() - t0)
            time.sleep(0.002)


if __name__ == "__main__":
    main()
