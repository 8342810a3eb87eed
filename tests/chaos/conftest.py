"""Chaos fixtures: a Redis server each test owns (and may stop), SMS fakes, SMS contacts."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection
from django.test import override_settings

from benchmarks._common import popen_tied, process_group_kill
from contacts.models import Channel
from delivery.models import Delivery, Message
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from sandbox.twilio import TwilioFake
from tests.contacts.factories import granted_contact
from tests.e2e.conftest import sendgrid_fake
from tests.harness import WORKER_APPLICATION_NAME, eventually
from tests.workspaces import workspace_for_tests

__all__ = ["sendgrid_fake"]

_phones = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnedRedis:
    """A redis-server of this test's own on a free port: stopping it touches nobody else."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        self.proc = popen_tied(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        """Frozen (SIGSTOP): clients block on their next command instead of failing at once."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Gone, data and all (no persistence): queued task messages are lost with it."""
        if self.proc is not None:
            self.resume()  # a frozen server would not act on SIGTERM
            process_group_kill(self.proc, timeout=10)
            self.proc = None


@pytest.fixture
def owned_redis(tmp_path: Path) -> Iterator[OwnedRedis]:
    server = OwnedRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def twilio_fake_started(**kwargs: object) -> TwilioFake:
    # No callbacks: nothing listens at the public base URL in these tests; the SIDs on the rows
    # are what callbacks would be matched by.
    return TwilioFake(account_sid="AC" + "7" * 32, auth_token="chaos-token", send_callbacks=False,
                      **kwargs).start()  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def twilio_chaos() -> Iterator[TwilioFake]:
    fake = twilio_fake_started()
    yield fake
    fake.stop()


def sms_env(
    *, worker_env: dict[str, str], redis_url: str, twilio: TwilioFake, rate: float = 50.0
) -> dict[str, str]:
    """A worker on this test's Redis (broker, pace) and Twilio fake, beating every 0.5 s."""
    return {
        **worker_env,
        "REDIS_URL": redis_url,
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "DELIVERY_SMS_RATE_PER_S": str(rate),
        "DELIVERY_CHUNK_SIZE": "1000",
        "DELIVERY_RETRY_BASE_S": "1",
        "DELIVERY_CLAIM_HEARTBEAT_S": "0.5",
        # The contacts live in Paris: at night there their SMS would rightly wait for 08:00.
        "REROUTE_QUIET_HOURS_SMS": "",
    }


# Reconciliation's "never left" rule with its parts cut to 1 + 2 + 1 s (the defaults are
# 5 + 10 + 60 s): the SMS workers reconcile with these, and the test process, sweeping as beat
# would, picks the rows due for a lookup with the same numbers (RECONCILE_FAST). The test process
# needs no Twilio settings: the workers that hold them do the lookups.
RECONCILE_WORKER_ENV = {
    "TWILIO_TIMEOUT_S": "2",
    "DELIVERY_SMS_LEAVE_MAX_S": "1",
    "DELIVERY_SMS_RECONCILE_LAG_S": "1",
}
RECONCILE_FAST: dict[str, object] = {
    "TWILIO_TIMEOUT_S": 2.0,
    "DELIVERY_SMS_LEAVE_MAX_S": 1.0,
    "DELIVERY_SMS_RECONCILE_LAG_S": 1.0,
}


def sms_rows(count: int) -> list[int]:
    """`count` planned SMS deliveries of one message, to contacts with numbers of their own."""
    message = Message.objects.create(
        workspace=workspace_for_tests(), name="chaos", sms_text="Hi {{ first_name }}"
    )
    contacts = [
        granted_contact(channel=Channel.SMS, phone=f"+4477009{next(_phones):05d}")
        for _ in range(count)
    ]
    rows = Delivery.objects.bulk_create(
        [
            Delivery(workspace_id=message.workspace_id, message=message, contact=c, channel="sms")
            for c in contacts
        ]
    )
    return [r.pk for r in rows]


def owned_send(url: str, *, queue: str | None = None) -> Callable[[str, list[int]], None]:
    """Publish chunk tasks to this test's Redis (the test process's own broker is the shared
    one), as the sweeper or a reroute would."""
    from continuity.celery import app
    from delivery.tasks import CHUNK_TASKS

    def send(channel: str, ids: list[int]) -> None:
        with app.connection_for_write(url) as conn:
            options: dict[str, Any] = {"queue": queue} if queue else {}
            app.send_task(CHUNK_TASKS[channel], args=[ids], connection=conn, **options)

    return send


def phones_by_delivery(ids: list[int]) -> dict[int, str]:
    return {
        d: str(p)
        for d, p in Delivery.objects.filter(id__in=ids).values_list("id", "contact__phone")
    }


def sids_by_phone(fake: TwilioFake) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for message in list(fake.messages):
        got.setdefault(message.to, []).append(message.sid)
    return got


def backends_terminate() -> int:
    """Terminate the Celery workers' connections to the test database (tests.harness names their
    sessions): the test process's own connections, its live server's included, stay."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [WORKER_APPLICATION_NAME],
        )
        return int(cursor.fetchone()[0])


def ids_in(ids: list[int], *statuses: str) -> set[int]:
    return set(
        Delivery.objects.filter(id__in=ids, status__in=statuses).values_list("id", flat=True)
    )


def settled(ids: list[int]) -> bool:
    return not Delivery.objects.filter(id__in=ids, status__in=[S.QUEUED, S.SENDING]).exists()


def sweeps_until_recovered(
    ids: list[int], *, send: Callable[[str, list[int]], None], timeout: float = 180
) -> set[int]:
    """Sweep as beat would, every 0.5 s, until no row of `ids` is queued, sending or unknown:
    a dead chunk's claim goes stale after 2 s (45 s by default), a queued row is re-enqueued
    after 1 s, and an unknown row is reconciled with the Twilio fake's list (RECONCILE_FAST).
    Returns every row seen `unknown` on the way."""
    was_unknown: set[int] = set()

    def recovered() -> bool:
        with override_settings(
            DELIVERY_CLAIM_STALE_S=2, DELIVERY_QUEUED_STALE_S=1, **RECONCILE_FAST
        ):
            deliveries_sweep(send=send)
        was_unknown.update(ids_in(ids, S.UNKNOWN))
        return settled(ids) and not ids_in(ids, S.UNKNOWN)

    eventually(recovered, timeout=timeout, interval=0.5)
    return was_unknown
