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
    Invalid,
    Normalised,
    Normaliser,
    RawSignal,
    Unauthorized,
    WebhookRequest,
    check_timestamp,
    flatten,
    hmac_hex,
    secrets_match,
    text,
)

DEFAULT_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"


class GrafanaNormaliser(Normaliser):
    kind = "grafana"
    auth = "hmac"
    # repeat_interval's default in both (Grafana's default notification policy too): 4 h.
    default_repeat_interval_s = 4 * 3600

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
        alerts = payload.get("alerts")
        if not isinstance(alerts, list) and _legacy_test(payload):
            return Normalised(notes=["Grafana test notification (legacy alerting): nothing to do"])
        if not isinstance(alerts, list) and "ruleName" in payload and "state" in payload:
            return _legacy_normalise(payload)
        if not isinstance(alerts, list) or not alerts:
            return alerts_normalise(payload=payload, kind="Grafana")
        real = [a for a in alerts if not (isinstance(a, dict) and grafana_test_alert(a))]
        if not real:
            return Normalised(notes=["Grafana contact point test notification: nothing to do"])
        result = alerts_normalise(payload={**payload, "alerts": real}, kind="Grafana")
        if len(real) < len(alerts):
            result.notes.append(f"{len(alerts) - len(real)} test alerts skipped")
        return result


def grafana_test_alert(alert: Mapping[str, Any]) -> bool:
    """The alert Grafana's "Test" button sends for a contact point, not a real one.

    Grafana fills it with placeholder labels: an underscore-prefixed "dummy" label, or the
    TestAlert/Grafana pair of its built-in test; some versions leave out the per-alert status.
    """
    labels = alert.get("labels")
    labels = labels if isinstance(labels, dict) else {}
    for name in labels:
        if str(name).startswith("_") and str(name).strip("_").lower().startswith("dummy"):
            return True
    if labels.get("alertname") == "TestAlert" and (
        labels.get("instance") == "Grafana" or labels.get("grafana_folder") == "Test Folder"
    ):
        return True
    # No status and nothing but placeholders: a test that a status check would refuse as 400.
    return "status" not in alert and not any(
        isinstance(v, str) and v and not v.startswith("_") for v in labels.values()
    )


def _legacy_test(payload: Mapping[str, Any]) -> bool:
    # Grafana's legacy alerting test: {"ruleName": "Test notification", "title": "[Alerting]
    # Test notification", ...}, with no alerts list.
    names = ("ruleName", "title")
    return any("test notification" in str(payload.get(name) or "").lower() for name in names)


LEGACY_FIRING = {"alerting"}
LEGACY_RESOLVED = {"ok"}


def _legacy_normalise(payload: Mapping[str, Any]) -> Normalised:
    """Grafana's legacy (pre-unified) alerting webhook: one rule, ``state`` alerting/ok.

    {"ruleId", "ruleName", "ruleUrl", "state", "title", "message", "tags", "evalMatches"}; the
    rule is the key. Other states (no_data, paused, pending) are no outage change.
    """
    state = text(payload.get("state"), 64).strip().lower()
    if state not in LEGACY_FIRING | LEGACY_RESOLVED:
        return Normalised(notes=[f"legacy alert state {state!r} is not an outage change"])
    rule = payload.get("ruleId") or payload.get("ruleUrl") or payload.get("ruleName")
    if rule in (None, "") or isinstance(rule, dict | list):
        raise Invalid("Grafana legacy body is missing required field 'ruleId'")
    attributes = {
        **flatten("tags", payload.get("tags") if isinstance(payload.get("tags"), dict) else {}),
        "ruleName": text(payload.get("ruleName"), 200),
        "ruleUrl": text(payload.get("ruleUrl")),
        "title": text(payload.get("title"), 200),
    }
    return Normalised(
        signals=[
            RawSignal(
                firing=state in LEGACY_FIRING,
                incident_key=f"rule:{text(rule, 240)}",
                attributes=attributes,
                summary=text(payload.get("title") or payload.get("ruleName")) or f"rule {rule}",
                link=text(payload.get("ruleUrl")),
            )
        ]
    )
