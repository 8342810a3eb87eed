"""What a chunk in flight leaves behind for others to read: its claim rows, their heartbeat, and
writes that survive a PostgreSQL connection dropped under them.

A chunk task opens one DeliveryClaim per message it sends (the claimed rows point at it) and a
thread of the worker process refreshes `heartbeat_at` every DELIVERY_CLAIM_HEARTBEAT_S while the
chunk runs. The claim rows are deleted when the chunk is done. A `sending` row whose claim is
missing or older than DELIVERY_CLAIM_STALE_S therefore lost its worker (SIGKILL, OOM, hard time
limit, a host gone), whatever the age of the row: the sweeper resolves it within about a minute,
and a slow chunk whose process is alive keeps its heartbeat and is left alone.

The heartbeat lives in PostgreSQL, not in Redis, because PostgreSQL is where the sweeper decides:
a Redis outage (which stops SMS pacing, not email) must not make a live chunk look dead.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from delivery.models import DeliveryClaim

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A dropped or terminated connection, a server restarting: worth a reconnect and another try.
# Anything else (a constraint, bad SQL) would fail the same way again.
DB_CONNECTION_ERRORS = (OperationalError, InterfaceError)


def db_write_durably(
    write: Callable[[], T], *, what: str, attempts: int | None = None, base_s: float = 0.2
) -> T:
    """Run `write`; when the connection to PostgreSQL was lost, reconnect and run it again.

    `write` must be safe to repeat: every write here is a guarded UPDATE inside one transaction,
    so a retry after a commit whose answer was lost matches nothing the second time. Inside an
    outer transaction nothing can be retried (its earlier work is gone with the connection), so
    the error goes up at once.
    """
    tries = attempts or settings.DELIVERY_OUTCOME_WRITE_ATTEMPTS
    for attempt in range(1, tries + 1):
        try:
            return write()
        except DB_CONNECTION_ERRORS as exc:
            if connection.in_atomic_block or attempt >= tries:
                raise
            logger.warning(
                "database write failed (%s, try %s of %s), reconnecting: %s",
                what,
                attempt,
                tries,
                exc,
            )
            # Django opens a fresh connection on the next query.
            connection.close()
            pause = random.uniform(base_s / 2, base_s * 2 ** (attempt - 1))  # noqa: S311 - jitter, not security  # nosec B311
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def claim_open(*, workspace_id: int, channel: str) -> int:
    now = timezone.now()
    claim = DeliveryClaim.objects.create(
        workspace_id=workspace_id,
        channel=channel,
        worker=worker_name(),
        claimed_at=now,
        heartbeat_at=now,
    )
    return claim.pk


def claims_close(*, claim_ids: Iterable[int], clean: bool) -> None:
    """The chunk is done with these claims. After a clean finish they hold no `sending` row and
    are deleted. Otherwise (stopped by a fault, an exception) they are left for the sweeper with
    an expired heartbeat, so its next run resolves what they still hold using `leaving`. If even
    this cannot be written, the claims go stale on their own."""
    ids = list(claim_ids)
    if not ids:
        return
    claims = DeliveryClaim.objects.filter(pk__in=ids)
    try:
        if clean:
            db_write_durably(claims.delete, what="claims close")
        else:
            db_write_durably(
                lambda: claims.update(heartbeat_at=timezone.now() - timedelta(days=1)),
                what="claims expire",
            )
    except DB_CONNECTION_ERRORS:
        logger.exception("could not close claims %s: the sweeper will once they are stale", ids)


class ClaimHeartbeat:
    """Refreshes a chunk's claims from a thread of its own while the chunk sends.

    A thread, not the send loop: a live chunk can wait a long time in one place (a slot of the
    shared pace, a provider answering slowly) and must not look dead meanwhile. The thread uses
    its own database connection and closes it when it stops.
    """

    def __init__(self, *, interval_s: float | None = None) -> None:
        self.interval_s = interval_s or settings.DELIVERY_CLAIM_HEARTBEAT_S
        self._claims: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, claim_id: int) -> None:
        with self._lock:
            self._claims.add(claim_id)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="delivery-claim-heartbeat", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                with self._lock:
                    ids = list(self._claims)
                try:
                    DeliveryClaim.objects.filter(pk__in=ids).update(heartbeat_at=timezone.now())
                except Exception as exc:
                    # Whatever it was, the beat must go on: the next one reconnects, and the
                    # stale threshold spans several beats.
                    logger.warning("claim heartbeat failed: %s", exc)
                    connection.close()
        finally:
            connection.close()
