"""A real Prometheus Alertmanager for the test suite (Debian's `prometheus-alertmanager`).

`alertmanager_binary()` finds it, installing it where the run may (tests/system_packages.py);
elsewhere the tests that need it skip, saying how to install it. `RealAlertmanager` starts it
on a free loopback port with a webhook receiver pointed at our monitor URL (bearer auth, short
group and repeat intervals), posts alerts through its API v2 and stops it again.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from benchmarks._common import popen_tied, process_group_kill
from tests.system_packages import system_binary

PACKAGE = "prometheus-alertmanager"
BINARIES = ("prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> tuple[str | None, str]:
    """The binary's path, or None and why not (the skip message)."""
    return system_binary(packages=(PACKAGE,), binaries=BINARIES)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RealAlertmanager:
    """One Alertmanager process with one webhook receiver, for the length of a `with` block."""

    def __init__(
        self,
        *,
        binary: str,
        webhook_url: str,
        bearer: str,
        group_by: tuple[str, ...] = ("alertname",),
        group_wait_s: float = 1,
        group_interval_s: float = 1,
        repeat_interval_s: float = 3,
    ) -> None:
        self.binary = binary
        self.webhook_url = webhook_url
        self.bearer = bearer
        self.group_by = group_by
        self.timings = (group_wait_s, group_interval_s, repeat_interval_s)
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2"

    def _config(self) -> str:
        wait, interval, repeat = self.timings
        # JSON is YAML: no YAML library needed to write the config.
        return json.dumps(
            {
                "route": {
                    "receiver": "continuity",
                    "group_by": list(self.group_by),
                    "group_wait": f"{int(wait * 1000)}ms",
                    "group_interval": f"{int(interval * 1000)}ms",
                    "repeat_interval": f"{int(repeat * 1000)}ms",
                },
                "receivers": [
                    {
                        "name": "continuity",
                        "webhook_configs": [
                            {
                                "url": self.webhook_url,
                                "send_resolved": True,
                                "http_config": {
                                    "authorization": {"type": "Bearer", "credentials": self.bearer}
                                },
                            }
                        ],
                    }
                ],
            }
        )

    def __enter__(self) -> RealAlertmanager:
        self.workdir = tempfile.TemporaryDirectory(prefix="continuity-am-")
        root = Path(self.workdir.name)
        (root / "alertmanager.yml").write_text(self._config())
        self.port = _free_port()
        self.process = popen_tied(
            [
                self.binary,
                f"--config.file={root / 'alertmanager.yml'}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: a single instance
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(root / "alertmanager.log").open("w"),
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).ok:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"alertmanager not ready in 30 s: {self.log()[-2000:]}")

    def __exit__(self, *_: Any) -> None:
        if self.process is not None:
            process_group_kill(self.process, timeout=10)
        if self.workdir is not None:
            self.workdir.cleanup()

    def log(self) -> str:
        if self.workdir is None:
            return ""
        path = Path(self.workdir.name) / "alertmanager.log"
        return path.read_text() if path.exists() else ""

    def post(self, *alerts: dict[str, Any]) -> None:
        """POST /api/v2/alerts: each {labels, annotations, startsAt, endsAt} as Prometheus does."""
        response = requests.post(f"{self.api}/alerts", json=list(alerts), timeout=5)
        response.raise_for_status()

    def alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.api}/alerts", timeout=5)
        response.raise_for_status()
        return list(response.json())


def alert(
    *,
    service: str,
    alertname: str,
    starts: datetime,
    ends: datetime | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": {"alertname": alertname, "service": service, "severity": "critical"},
        "annotations": {"summary": f"{service} publishing is failing"},
        "startsAt": iso(starts),
        "generatorURL": f"http://prometheus.local/graph?service={service}",
    }
    if ends is not None:
        body["endsAt"] = iso(ends)
    return body


def wait_for(condition: Any, *, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def started(**kwargs: Any) -> Iterator[RealAlertmanager]:
    with RealAlertmanager(**kwargs) as manager:
        yield manager
