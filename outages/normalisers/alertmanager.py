"""Prometheus Alertmanager webhook (version "4"): a group of alerts, each with its fingerprint.

Alertmanager can only send basic or bearer credentials (http_config), so that is the auth. It
repeats firing groups every repeat_interval and an HA pair may send twice: the fingerprint is the
incident key, so repeats change nothing downstream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from outages.normalisers.base import (
    Invalid,
    Normalised,
    Normaliser,
    RawSignal,
    flatten,
    parse_time,
    text,
)


def alerts_normalise(*, payload: Mapping[str, Any], kind: str) -> Normalised:
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise Invalid(f"{kind} body is missing required field 'alerts' (a list)")
    group = {
        **flatten("commonLabels", payload.get("commonLabels")),
        **flatten("groupLabels", payload.get("groupLabels")),
    }
    if payload.get("receiver"):
        group["receiver"] = str(payload["receiver"])
    result = Normalised()
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise Invalid(f"alerts[{index}] must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise Invalid(f"alerts[{index}].status must be 'firing' or 'resolved', got {status!r}")
        labels = alert.get("labels")
        if not isinstance(labels, dict):
            raise Invalid(f"alerts[{index}].labels must be an object")
        annotations: dict[str, Any] = (
            alert["annotations"] if isinstance(alert.get("annotations"), dict) else {}
        )
        key = (
            alert.get("fingerprint")
            or hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        )
        attributes = {**group, **flatten("labels", labels), **flatten("annotations", annotations)}
        if "alertname" in labels:
            attributes["alertname"] = str(labels["alertname"])
        result.signals.append(
            RawSignal(
                firing=status == "firing",
                incident_key=str(key),
                attributes=attributes,
                started_at=parse_time(alert.get("startsAt")),
                ended_at=parse_time(alert.get("endsAt")) if status == "resolved" else None,
                summary=text(
                    annotations.get("summary")
                    or annotations.get("description")
                    or labels.get("alertname")
                ),
                link=text(alert.get("generatorURL")),
            )
        )
    truncated = payload.get("truncatedAlerts")
    if isinstance(truncated, int) and truncated > 0:
        result.notes.append(f"{truncated} alerts truncated by the sender (max_alerts)")
    return result


class AlertmanagerNormaliser(Normaliser):
    kind = "alertmanager"
    auth = "bearer"
    # repeat_interval's default in both (Grafana's default notification policy too): 4 h.
    default_repeat_interval_s = 4 * 3600

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        return alerts_normalise(payload=payload, kind="Alertmanager")
