"""Continuity's own signed JSON, for any tool that can sign a request.

Body: {"status": "firing"|"resolved", "incident_key": "...", "network": "instagram" (optional),
"summary", "link", "started_at", "ended_at" (ISO 8601, optional), "labels": {...} (optional)}.
Header: X-Continuity-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">;
several v1= are allowed (rotation). Older than the tolerance (300 s) is refused, and so is a
signature seen before (a replay).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from outages.normalisers.base import (
    Invalid,
    Normalised,
    Normaliser,
    RawSignal,
    Unauthorized,
    WebhookRequest,
    check_timestamp,
    flatten,
    hmac_hex,
    parse_time,
    require,
    secrets_match,
    text,
)

HEADER = "X-Continuity-Signature"


def generic_sign(*, secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender puts on a request (used by tests, the benchmark and docs)."""
    return f"t={timestamp},v1={hmac_hex(secret, f'{timestamp}.'.encode() + body)}"


class GenericNormaliser(Normaliser):
    kind = "generic"
    auth = "hmac"

    def authenticate(
        self, *, request: WebhookRequest, secrets: list[str], options: Mapping[str, Any]
    ) -> str:
        header = request.headers.get(HEADER, "")
        if not header:
            raise Unauthorized(f"missing {HEADER} header")
        timestamp, offered = "", []
        for part in header.split(","):
            name, _, value = part.strip().partition("=")
            if name == "t":
                timestamp = value
            elif name == "v1":
                offered.append(value.lower())
        if not timestamp or not offered:
            raise Unauthorized(f"{HEADER} must look like t=<unix>,v1=<hex>")
        check_timestamp(
            timestamp=timestamp,
            now=request.received_at,
            tolerance_s=settings.OUTAGES_SIGNATURE_TOLERANCE_S,
        )
        message = timestamp.encode() + b"." + request.body
        expected = [hmac_hex(secret, message) for secret in secrets]
        matched = [sig for sig in offered if secrets_match(sig, expected)]
        if not matched:
            raise Unauthorized(f"{HEADER} does not match the body signed with our secret")
        return f"sig:{matched[0]}"

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        status = str(require(payload, "status", "generic"))
        if status not in ("firing", "resolved"):
            raise Invalid(f"'status' must be 'firing' or 'resolved', got {status!r}")
        key = str(require(payload, "incident_key", "generic"))
        labels = payload.get("labels")
        if labels is not None and not isinstance(labels, dict):
            raise Invalid("'labels' must be an object")
        return Normalised(
            signals=[
                RawSignal(
                    firing=status == "firing",
                    incident_key=key[:255],
                    attributes=flatten("labels", labels or {}),
                    started_at=parse_time(payload.get("started_at")),
                    ended_at=parse_time(payload.get("ended_at")),
                    summary=text(payload.get("summary")),
                    link=text(payload.get("link")),
                    network=text(payload.get("network"), 32),
                )
            ]
        )
