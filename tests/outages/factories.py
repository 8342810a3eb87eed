"""Test data for the outages app: sources with a known secret, and signed requests."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from outages.credentials import credential_issue
from outages.models import MonitorSource
from outages.normalisers.base import hmac_hex
from outages.normalisers.generic import generic_sign

SAMPLES = Path(__file__).resolve().parent / "samples"
SECRET = "s3cret-for-tests-0123456789"
# A sender re-signs each delivery; distinct timestamps keep repeats from looking like replays.
# "now minus a cycling age" repeated a timestamp whenever the clock ticked between two posts (age
# k at second T, age k+1 at T+1): the same body then carried the same signature and was refused as
# a replay, more often on a busy machine. Each timestamp is handed out once instead.
_ISSUED: set[int] = set()


def _timestamp_fresh() -> int:
    ts = int(time.time())
    while ts in _ISSUED:
        ts -= 1
    _ISSUED.add(ts)
    return ts


def sample_bytes(kind: str, name: str) -> bytes:
    return (SAMPLES / kind / f"{name}.json").read_bytes()


def sample(kind: str, name: str) -> dict[str, Any]:
    return json.loads(sample_bytes(kind, name))


def source_create(
    *,
    kind: str = "generic",
    slug: str | None = None,
    default_network: str = "instagram",
    mapping_rules: list[dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    secret: str = SECRET,
    active: bool = True,
) -> MonitorSource:
    source = MonitorSource.objects.create(
        name=f"{kind} monitor",
        slug=slug or f"{kind.replace('_', '-')}-{uuid.uuid4().hex[:6]}",
        kind=kind,
        default_network=default_network,
        mapping_rules=mapping_rules or [],
        options=options or {},
        active=active,
    )
    credential_issue(source=source, secret=secret)
    return source


def auth_for(
    *,
    kind: str,
    body: bytes,
    secret: str = SECRET,
    timestamp: int | None = None,
    webhook_id: str | None = None,
) -> tuple[dict[str, str], str]:
    """Headers (as Django test client kwargs) and query string a real sender would add."""
    if kind in ("alertmanager", "uptime_kuma", "datadog"):
        return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}, ""
    if kind in ("statuspage", "betterstack"):
        return {}, f"?token={secret}"
    if kind == "grafana":
        return {"HTTP_X_GRAFANA_ALERTING_SIGNATURE": hmac_hex(secret, body)}, ""
    if kind == "pagerduty":
        return {
            "HTTP_X_PAGERDUTY_SIGNATURE": f"v1={hmac_hex(secret, body)}",
            "HTTP_X_WEBHOOK_ID": webhook_id or str(uuid.uuid4()),
        }, ""
    if kind == "generic":
        ts = _timestamp_fresh() if timestamp is None else timestamp
        return {
            "HTTP_X_CONTINUITY_SIGNATURE": generic_sign(secret=secret, body=body, timestamp=ts)
        }, ""
    raise AssertionError(kind)


def hook_post(client: Any, source: MonitorSource, body: bytes, **extra: Any) -> Any:
    headers, query = auth_for(kind=source.kind, body=body)
    headers.update(extra)
    return client.post(
        f"/hooks/monitors/{source.slug}/{query}",
        data=body,
        content_type="application/json",
        **headers,
    )
