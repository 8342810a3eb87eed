"""outages.intake_p99_ms: monitor webhook latency at a steady request rate, half duplicates.

A real gunicorn (gthread: 2 workers x 4 threads) on loopback serves /hooks/monitors/ from its own
PostgreSQL database (continuity_bench_outages, migrated here). An open-loop client sends at a fixed
rate: half are new alerts (Alertmanager with bearer auth, or our signed generic kind), half are
repeats of alerts already sent (as Alertmanager's repeat_interval and HA pairs produce). At the
end every network must have exactly one open window.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet

from benchmarks._common import (
    bench_database_prepare,
    emit,
    gunicorn_wait_healthy,
    popen_tied,
    process_group_kill,
    sized,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "continuity_bench_outages"
SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a throwaway bench database
CREDENTIAL_KEY = "bench-credential-key"
WORKERS, THREADS = 2, 4


def _server_env(url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        # The production settings; REDIS_KEY_PREFIX (inherited) keeps the tasks intake enqueues
        # in this run's namespace.
        "DJANGO_SETTINGS_MODULE": "continuity.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "CONTACTS_LINK_SIGNING_KEY": "bench-only-link-key-not-for-production-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "text",
        "OUTAGES_CREDENTIAL_KEY": CREDENTIAL_KEY,
        # Production refuses to start without its secrets (continuity/checks.py): this server
        # sends nothing, so it names no channel, and the keys below are throwaway ones.
        "DELIVERY_INSTALL_CHANNELS": "",
        "SOCIAL_TOKEN_KEYS": Fernet.generate_key().decode(),
        "CONTACTS_ERASURE_HASH_KEY": "bench-only-erasure-key-0123456789",
        # One loopback client stands for many monitors: the rate limits still count every
        # request (their cost is in the figure) but never refuse one.
        "THROTTLE_MONITOR_WEBHOOK_PER_IP": "100000000",
        "THROTTLE_MONITOR_WEBHOOK_PER_SOURCE": "100000000",
    }
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    return env


def _prepare(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    # The server decrypts the secrets written here, so both sides use the same key.
    os.environ["OUTAGES_CREDENTIAL_KEY"] = CREDENTIAL_KEY
    from benchmarks._common import setup_django

    setup_django()
    from django.db import connection

    from outages.credentials import credential_issue
    from outages.models import MonitorSource

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE outages_outagesignal, outages_windowevent, outages_outagewindow, "
            "outages_webhookreceipt, outages_deliveryseen, outages_monitorcredential, "
            "outages_monitorsource, outages_networklock CASCADE"
        )
    for kind in ("alertmanager", "generic"):
        source = MonitorSource.objects.create(
            name=f"bench {kind}", slug=f"bench-{kind}", kind=kind, default_network=""
        )
        credential_issue(source=source, secret=SECRET)
    connection.close()


def _alertmanager_body(network: str, fingerprint: str) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "SocialDown", "network": network, "instance": fingerprint},
        "annotations": {"summary": f"{network} unreachable"},
        "startsAt": "2026-11-24T08:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": fingerprint,
    }
    return json.dumps(
        {
            "version": "4",
            "groupKey": f"{{}}:{network}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "continuity",
            "alerts": [alert],
        }
    ).encode()


def _generic_body(network: str, key: str) -> bytes:
    return json.dumps(
        {"status": "firing", "incident_key": key, "network": network, "summary": "down"}
    ).encode()


def _plan(total: int, networks: list[str]) -> list[tuple[str, str, str]]:
    """(kind, network, key) per request; the first covers every network, then half repeat."""
    rng = random.Random(6)
    sent: list[tuple[str, str, str]] = []
    plan: list[tuple[str, str, str]] = []
    for i in range(total):
        if i < len(networks) * 2:
            item = ("alertmanager" if i % 2 else "generic", networks[i // 2], f"k{i}")
        elif rng.random() < 0.5:
            item = rng.choice(sent)  # a duplicate of an alert already sent
        else:
            item = (rng.choice(["alertmanager", "generic"]), rng.choice(networks), f"k{i}")
        sent.append(item)
        plan.append(item)
    return plan


async def _run(
    base: str, plan: list[tuple[str, str, str]], rate: float
) -> tuple[list[float], int, list[str], float]:
    import aiohttp

    from outages.normalisers.generic import generic_sign

    latencies: list[float] = []
    problems: list[str] = []
    errors = 0
    sends: dict[str, int] = {}
    run_start = int(time.time())

    async def one(session: aiohttp.ClientSession, kind: str, network: str, key: str) -> None:
        nonlocal errors
        if kind == "alertmanager":
            body = _alertmanager_body(network, key)
            headers = {"Authorization": f"Bearer {SECRET}"}
        else:
            body = _generic_body(network, key)
            # A sender signs each delivery afresh. The signature covers the second and the body,
            # so each repeat of an alert gets its own second, counting back from the run's start
            # (well within the tolerance); an identical signature would rightly be a replay.
            sends[key] = sends.get(key, -1) + 1
            stamp = run_start - sends[key]
            headers = {
                "X-Continuity-Signature": generic_sign(secret=SECRET, body=body, timestamp=stamp)
            }
        headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            async with session.post(
                f"{base}/hooks/monitors/bench-{kind}/", data=body, headers=headers
            ) as response:
                await response.read()
                ok = response.status in (200, 202)
                if not ok:
                    problems.append(f"{response.status} {(await response.text())[:200]}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            ok = False
            problems.append(repr(exc))
        latencies.append((time.perf_counter() - started) * 1000)
        if not ok:
            errors += 1

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        # Warm-up, not measured: concurrent so every server thread opens its database
        # connection and imports its modules before the clock starts.
        for _ in range(4):
            await asyncio.gather(
                *(one(session, "alertmanager", "facebook", "warm") for _ in range(16))
            )
        latencies.clear()
        problems.clear()
        errors = 0
        tasks = []
        start = time.perf_counter()
        for i, (kind, network, key) in enumerate(plan):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, kind, network, key)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return latencies, errors, problems, elapsed


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1)]


def main() -> None:
    rate = float(sized(full=200, small=100))
    seconds = sized(full=30, small=2)
    url = bench_database_prepare(BENCH_DB)
    env = _server_env(url)
    _prepare(url)
    from outages.networks import Network

    networks = [n.value for n in Network]
    plan = _plan(int(rate * seconds), networks)
    # gunicorn serves on a socket bound here to port 0: no port is picked and then lost to
    # another program before the server binds it.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = popen_tied(
        [gunicorn, "continuity.wsgi", "-b", f"fd://{listener.fileno()}", "-k", "gthread",
         "-w", str(WORKERS), "--threads", str(THREADS), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        pass_fds=(listener.fileno(),),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        gunicorn_wait_healthy(base=base, server=server)
        latencies, errors, problems, elapsed = asyncio.run(_run(base, plan, rate))
    finally:
        process_group_kill(server)
        listener.close()

    from outages.models import OutageWindow

    per_network = {
        n: OutageWindow.objects.filter(network=n, state="open").count() for n in networks
    }
    one_each = all(count == 1 for count in per_network.values())
    total_windows = OutageWindow.objects.count()
    emit(
        "outages.intake_p99_ms",
        _percentile(latencies, 99),
        "ms",
        target="p99 < 50 ms at 200 req/s, 50% duplicates, 0 errors, one window per network",
        server=f"gunicorn {WORKERS} workers x {THREADS} threads (gthread), loopback, PostgreSQL",
        rate_per_s=rate,
        achieved_per_s=round(len(latencies) / elapsed, 1),
        requests=len(latencies),
        p50_ms=round(_percentile(latencies, 50), 2),
        max_ms=round(max(latencies), 2),
        errors=errors,
        first_errors=problems[:3],
        windows=total_windows,
        one_window_per_network=one_each,
    )
    if not one_each or total_windows != len(networks):
        sys.exit(f"expected exactly one window per network, got {per_network}")


if __name__ == "__main__":
    main()
