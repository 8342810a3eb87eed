"""Better Stack Uptime incident webhooks: a JSON:API incident, {"data": {id, attributes}}.

Better Stack signs nothing, so the secret travels as ?token=... in the webhook URL. An incident
fires until its status is "Resolved" (or resolved_at is set); the incident id is the key.
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


class BetterStackNormaliser(Normaliser):
    kind = "betterstack"
    auth = "url_token"

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        incident_id = require(payload, "data.id", "Better Stack")
        attributes_raw = require(payload, "data.attributes", "Better Stack")
        if not isinstance(attributes_raw, dict):
            raise Invalid("Better Stack 'data.attributes' must be an object")
        status = text(attributes_raw.get("status"))
        resolved_at = parse_time(attributes_raw.get("resolved_at"))
        firing = status.lower() != "resolved" and resolved_at is None
        notes: list[str] = []
        relationships = payload["data"].get("relationships")
        if relationships is not None and not isinstance(relationships, dict):
            # Optional, and only read for the monitor id: a wrong shape must not lose the alert.
            notes.append("data.relationships is not an object: ignored")
        monitor = _dig(relationships, "monitor", "data")
        attributes = {
            "name": text(attributes_raw.get("name")),
            "url": text(attributes_raw.get("url")),
            "cause": text(attributes_raw.get("cause")),
            "status": status,
            "team_name": text(attributes_raw.get("team_name")),
            "monitor.id": text(monitor.get("id"), 200) if isinstance(monitor, dict) else "",
        }
        return Normalised(
            signals=[
                RawSignal(
                    firing=firing,
                    incident_key=f"incident:{incident_id}",
                    attributes=attributes,
                    started_at=parse_time(attributes_raw.get("started_at")),
                    ended_at=resolved_at,
                    summary=" ".join(filter(None, [attributes["name"], attributes["cause"]])),
                    link=attributes["url"],
                )
            ],
            notes=notes,
        )


def _dig(value: Any, *path: str) -> Any:
    """value[path[0]][path[1]]..., or None as soon as a step is not an object."""
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
