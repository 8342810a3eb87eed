"""A run's workers and queues are its own: a worker of another run (another checkout, a `make
bench`, a run killed half-way) takes none of its tasks, and no worker outlives its starter."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from kombu import Connection

from continuity.celery import QUEUE_CONTROL, app
from continuity.models import Heartbeat
from continuity.tasks import heartbeat
from tests.harness import ProcessHandle, eventually, redis_keys_delete

pytestmark = pytest.mark.e2e


@pytest.fixture
def other_prefix() -> Iterator[str]:
    prefix = f"{settings.REDIS_KEY_PREFIX}other-run:"
    yield prefix
    redis_keys_delete(url=settings.REDIS_URL, prefix=prefix)


def test_a_worker_of_another_run_takes_none_of_this_runs_tasks(
    celery_worker_process: Callable[..., ProcessHandle], other_prefix: str
) -> None:
    other = celery_worker_process(
        queues=[QUEUE_CONTROL], env_extra={"REDIS_KEY_PREFIX": other_prefix}, name="other-run"
    )
    heartbeat.apply_async(kwargs={"name": "this-run"})
    # A task of the other run, sent after ours to the same queue name: once the other worker
    # has run it, it would have met ours first had it been able to see it.
    options = {**app.conf.broker_transport_options, "global_keyprefix": other_prefix}
    with Connection(app.conf.broker_url, transport_options=options) as conn:
        heartbeat.apply_async(kwargs={"name": "other-run"}, producer=conn.Producer())
    eventually(lambda: Heartbeat.objects.filter(name="other-run").exists(), timeout=120)
    assert not Heartbeat.objects.filter(name="this-run").exists(), other.output
    client = redis.Redis.from_url(settings.REDIS_URL)
    # Other tests of this run (the other xdist process) may queue control tasks of their own;
    # ours is still there, once, in the message's plain-text kwargs header.
    waiting = client.lrange(f"{settings.REDIS_KEY_PREFIX}{QUEUE_CONTROL}", 0, -1)
    assert [b"this-run" in message for message in waiting].count(True) == 1
    # This run's own worker does take it: the message was there to take all along.
    celery_worker_process(queues=[QUEUE_CONTROL], name="this-run")
    eventually(lambda: Heartbeat.objects.filter(name="this-run").exists(), timeout=120)


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies waiting to be reaped do not)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            alive.append(int(stat.parent.name))
    return alive


PARENT = """
import time
from tests.harness import child_env, start_worker
worker = start_worker(env=child_env(), queues=["control"], name="orphan-candidate")
print(f"worker-pid {worker.proc.pid}", flush=True)
time.sleep(3600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_the_process_that_started_it_even_when_that_one_is_sigkilled(
    worker_env: dict[str, str],
) -> None:
    parent = ProcessHandle([sys.executable, "-c", PARENT], worker_env, "parent")
    try:
        line = parent.wait_for("worker-pid", timeout=180)
        worker_pid = int(line.split()[1])
        # The worker and its prefork pool share a process group led by the worker.
        assert len(_alive_in_group(worker_pid)) >= 2
        os.kill(parent.proc.pid, signal.SIGKILL)  # no teardown runs: only the kernel can help
        parent.proc.wait(timeout=60)
        eventually(lambda: not _alive_in_group(worker_pid), timeout=120, interval=0.5)
    finally:
        parent.stop()
