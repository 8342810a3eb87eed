"""Datadog webhook integration: the payload is the template the user configures (docs/monitors.md).

The template must carry $ALERT_TRANSITION (Triggered, Re-Triggered, Recovered, Warn, ...) and
$ALERT_CYCLE_KEY, which links a trigger to its recovery and is the incident key. Datadog cannot
sign: it sends a bearer token through the webhook's custom headers (or basic auth).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outages.normalisers.base import (
    Invalid,
    Normalised,
    Normaliser,
    RawSignal,
    parse_time,
    require,
    text,
)

FIRING = {"triggered", "re-triggered", "renotify"}
RESOLVED = {"recovered"}


def tags_flatten(raw: Any) -> dict[str, str]:
    """ "$TAGS" renders as "env:prod,network:instagram": tags.env=prod, tags.network=instagram."""
    out: dict[str, str] = {"tags": text(raw)}
    for tag in text(raw).split(","):
        name, sep, value = tag.strip().partition(":")
        if sep and name:
            out[f"tags.{name}"] = value
    return out


class DatadogNormaliser(Normaliser):
    kind = "datadog"
    auth = "bearer"

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        transition = str(require(payload, "alert_transition", "Datadog"))
        cycle_key = payload.get("alert_cycle_key") or payload.get("alert_id")
        if not cycle_key:
            raise Invalid("Datadog body is missing required field 'alert_cycle_key'")
        lowered = transition.strip().lower()
        if lowered not in FIRING | RESOLVED:
            return Normalised(notes=[f"alert transition {transition!r} is not an outage change"])
        firing = lowered in FIRING
        at = parse_time(payload.get("date"))
        attributes = {
            **tags_flatten(payload.get("tags")),
            "alert_id": text(payload.get("alert_id")),
            "alert_scope": text(payload.get("alert_scope")),
            "event_title": text(payload.get("event_title")),
            "hostname": text(payload.get("hostname")),
        }
        return Normalised(
            signals=[
                RawSignal(
                    firing=firing,
                    incident_key=f"cycle:{cycle_key}",
                    attributes=attributes,
                    started_at=at if firing else None,
                    ended_at=None if firing else at,
                    summary=text(payload.get("event_title")),
                    link=text(payload.get("link")),
                )
            ]
        )
