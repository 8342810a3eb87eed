"""Grafana alerting webhook contact point: Alertmanager-like body plus optional HMAC signing.

Grafana signs the raw body with HMAC-SHA256 (hex) in X-Grafana-Alerting-Signature, or
"timestamp:body" when a timestamp header is configured on the contact point; name that header
in the source options as {"timestamp_header": "..."} so stale timestamps are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from outages.normalisers.alertmanager import alerts_normalise
from outages.normalisers.base import (
    Normalised,
    Normaliser,
    Unauthorized,
    WebhookRequest,
    check_timestamp,
    hmac_hex,
    secrets_match,
)

DEFAULT_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"


class GrafanaNormaliser(Normaliser):
    kind = "grafana"
    auth = "hmac"

    def authenticate(
        self, *, request: WebhookRequest, secrets: list[str], options: Mapping[str, Any]
    ) -> str:
        header = str(options.get("signature_header") or DEFAULT_SIGNATURE_HEADER)
        signature = request.headers.get(header, "").strip().lower()
        if not signature:
            raise Unauthorized(f"missing {header} header")
        message = request.body
        timestamp_header = str(options.get("timestamp_header") or "")
        if timestamp_header:
            timestamp = request.headers.get(timestamp_header, "").strip()
            if not timestamp:
                raise Unauthorized(f"missing {timestamp_header} header")
            check_timestamp(
                timestamp=timestamp,
                now=request.received_at,
                tolerance_s=settings.OUTAGES_SIGNATURE_TOLERANCE_S,
            )
            message = timestamp.encode() + b":" + request.body
        expected = [hmac_hex(secret, message) for secret in secrets]
        if not secrets_match(signature, expected):
            raise Unauthorized(f"{header} does not match the body signed with this source's secret")
        return ""

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        return alerts_normalise(payload=payload, kind="Grafana")
