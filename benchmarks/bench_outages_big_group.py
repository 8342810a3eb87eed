"""outages.big_group_ms: one Alertmanager request carrying a group of 4,000 new alerts.

A real gunicorn (as in bench_outages_intake) serves /hooks/monitors/ from its own database
(continuity_bench_outages_group). Each run posts a group of 4,000 never-seen alerts for one
network (the first run opens the window, later ones join it); the figure is the slowest run's
request time. While the first group is applied, single alerts for the same network are posted
every 20 ms: their worst latency shows whether the group held the network's lock throughout.
The group's resolve (4,000 resolved alerts, closing the window) is timed too.

Alerts carry the labels a real rule produces (~450 bytes each), so a 4,000-alert group is ~1.8
MB: the server runs with OUTAGES_WEBHOOK_MAX_BODY_BYTES raised to 4 MiB, as an operator who lets
Alertmanager send groups this big must (docs/monitors.md).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks._common import (
    bench_database_prepare,
    emit,
    gunicorn_wait_healthy,
    popen_tied,
    process_group_kill,
    sized,
)
from benchmarks.bench_outages_intake import SECRET, THREADS, WORKERS, _prepare, _server_env

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "continuity_bench_outages_group"
ALERTS = 4000
NETWORK = "x"
MAX_BODY = 4 * 1024 * 1024


def _group(run: str, *, status: str = "firing") -> bytes:
    ends = "2026-11-24T09:00:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": "SocialPublishFailing",
                "network": NETWORK,
                "severity": "critical",
                "job": "publisher",
                "instance": f"publisher-{i:05d}.prod.svc:9100",
                "namespace": "social",
            },
            "annotations": {
                "summary": f"publisher {i} cannot post to X",
                "description": "5xx from POST /2/tweets for 5 minutes",
            },
            "startsAt": "2026-11-24T08:00:00.000Z",
            "endsAt": ends,
            "generatorURL": f"http://prometheus.local/graph?g0.expr=up&i={i}",
            "fingerprint": f"{run}{i:011x}",
        }
        for i in range(ALERTS)
    ]
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="SocialPublishFailing", run="{run}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "continuity",
            "groupLabels": {"alertname": "SocialPublishFailing"},
            "commonLabels": {"alertname": "SocialPublishFailing", "network": NETWORK},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.local",
            "alerts": alerts,
        }
    ).encode()


def _single(key: str) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "SocialDown", "network": NETWORK, "instance": key},
        "annotations": {"summary": "X unreachable"},
        "startsAt": "2026-11-24T08:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": key,
    }
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


def main() -> None:
    import requests

    runs = sized(full=5, small=2)
    url = bench_database_prepare(BENCH_DB)
    env = {**_server_env(url), "OUTAGES_WEBHOOK_MAX_BODY_BYTES": str(MAX_BODY)}
    _prepare(url)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = popen_tied(
        [gunicorn, "continuity.wsgi", "-b", f"fd://{listener.fileno()}", "-k", "gthread",
         "-w", str(WORKERS), "--threads", str(THREADS), "--log-level", "warning",
         "--timeout", "120"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        pass_fds=(listener.fileno(),),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    hook = f"{base}/hooks/monitors/bench-alertmanager/"
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    timings: list[float] = []
    singles: list[float] = []
    problems: list[str] = []
    try:
        gunicorn_wait_healthy(base=base, server=server)
        session = requests.Session()
        # Warm-up, not measured: both workers import the app and open their connection.
        for i in range(8):
            session.post(hook, data=_single(f"warm{i}"), headers=headers, timeout=30)
        bodies = [_group(f"r{r}-") for r in range(runs)]
        stop = threading.Event()

        def trickle() -> None:
            single_session = requests.Session()
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                answer = single_session.post(
                    hook, data=_single(f"single{n}"), headers=headers, timeout=30
                )
                singles.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    problems.append(f"single {answer.status_code} {answer.text[:200]}")
                n += 1
                time.sleep(0.02)

        for r, body in enumerate(bodies):
            thread = threading.Thread(target=trickle) if r == 0 else None
            if thread is not None:
                thread.start()
                time.sleep(0.1)
            started = time.perf_counter()
            answer = session.post(hook, data=body, headers=headers, timeout=120)
            timings.append((time.perf_counter() - started) * 1000)
            if thread is not None:
                stop.set()
                thread.join()
            if answer.status_code != 200:
                problems.append(f"group {answer.status_code} {answer.text[:200]}")
        started = time.perf_counter()
        resolved = session.post(
            hook, data=_group("r0-", status="resolved"), headers=headers, timeout=120
        )
        resolve_ms = (time.perf_counter() - started) * 1000
        if resolved.status_code != 200:
            problems.append(f"resolve {resolved.status_code} {resolved.text[:200]}")
    finally:
        process_group_kill(server)
        listener.close()

    from outages.models import OutageSignal, OutageWindow

    firing = OutageSignal.objects.filter(network=NETWORK, state="firing").count()
    open_windows = OutageWindow.objects.filter(network=NETWORK, state="open").count()
    emit(
        "outages.big_group_ms",
        max(timings),
        "ms",
        target="one request of 4,000 new alerts <= 1,000 ms, network lock held per batch only",
        server=f"gunicorn {WORKERS} workers x {THREADS} threads (gthread), loopback, PostgreSQL",
        alerts=ALERTS,
        body_bytes=len(bodies[0]),
        runs_ms=[round(t, 1) for t in timings],
        resolve_ms=round(resolve_ms, 1),
        single_alerts_during_group=len(singles),
        single_alert_max_ms=round(max(singles), 1) if singles else None,
        firing_after=firing,
        open_windows=open_windows,
        errors=len(problems),
        first_errors=problems[:3],
    )
    # Every group but the resolved first one is still firing, plus the single alerts.
    expected = ALERTS * (runs - 1) + len(singles) + 8
    if problems or open_windows != 1 or firing != expected:
        sys.exit(f"unexpected end state: {firing} firing (expected {expected}), {problems[:3]}")


if __name__ == "__main__":
    main()
