"""Atlassian Statuspage subscriber webhooks (component_update, incident); Instatus sends the same.

Statuspage signs nothing, so the secret travels as ?token=... in the subscribed URL. Component
statuses partial_outage/major_outage (Instatus: PARTIALOUTAGE, MINOROUTAGE, MAJOROUTAGE) fire;
anything else (operational, degraded_performance, under_maintenance) resolves. Incidents fire
while investigating/identified/monitoring and resolve on resolved/postmortem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outages.normalisers.base import (
    Invalid,
    Normalised,
    Normaliser,
    RawSignal,
    flatten,
    parse_time,
    require,
    text,
)

FIRING_COMPONENT = {"partial_outage", "major_outage", "partialoutage", "minoroutage", "majoroutage"}
FIRING_INCIDENT = {"investigating", "identified", "monitoring"}
RESOLVED_INCIDENT = {"resolved", "postmortem"}


class StatuspageNormaliser(Normaliser):
    kind = "statuspage"
    auth = "url_token"

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        page = flatten("page", payload.get("page"))
        if "component_update" in payload:
            return self._component(payload, page)
        if "incident" in payload:
            return self._incident(payload, page)
        if "maintenance" in payload:
            return Normalised(notes=["maintenance notification: not an outage"])
        raise Invalid("Statuspage body needs 'component_update' or 'incident'")

    def _component(self, payload: Mapping[str, Any], page: dict[str, str]) -> Normalised:
        update = payload["component_update"]
        if not isinstance(update, dict):
            raise Invalid("Statuspage 'component_update' must be an object")
        new_status = str(require(payload, "component_update.new_status", "Statuspage"))
        component: dict[str, Any] = (
            payload["component"] if isinstance(payload.get("component"), dict) else {}
        )
        component_id = component.get("id") or update.get("component_id")
        if not component_id:
            raise Invalid("Statuspage body is missing required field 'component.id'")
        firing = new_status.strip().lower() in FIRING_COMPONENT
        at = parse_time(update.get("created_at"))
        attributes = {
            **page,
            "component.id": str(component_id),
            "component.name": text(component.get("name")),
            "component.status": new_status,
        }
        return Normalised(
            signals=[
                RawSignal(
                    firing=firing,
                    incident_key=f"component:{component_id}",
                    attributes=attributes,
                    started_at=at if firing else None,
                    ended_at=None if firing else at,
                    summary=f"{component.get('name') or component_id}: {new_status}",
                    link=page.get("page.url", ""),
                )
            ]
        )

    def _incident(self, payload: Mapping[str, Any], page: dict[str, str]) -> Normalised:
        incident = payload["incident"]
        if not isinstance(incident, dict):
            raise Invalid("Statuspage 'incident' must be an object")
        incident_id = require(payload, "incident.id", "Statuspage")
        status = str(require(payload, "incident.status", "Statuspage")).strip().lower()
        if status in FIRING_INCIDENT:
            firing = True
        elif status in RESOLVED_INCIDENT:
            firing = False
        else:
            return Normalised(notes=[f"incident status {status!r} is not an outage: ignored"])
        components: list[Any] = (
            incident["components"] if isinstance(incident.get("components"), list) else []
        )
        attributes = {
            **page,
            "incident.id": str(incident_id),
            "incident.name": text(incident.get("name")),
            "incident.impact": text(incident.get("impact")),
        }
        ids = [str(c.get("id")) for c in components if isinstance(c, dict) and c.get("id")]
        if ids:
            attributes["component.id"] = ids[0]
        return Normalised(
            signals=[
                RawSignal(
                    firing=firing,
                    incident_key=f"incident:{incident_id}",
                    attributes=attributes,
                    started_at=parse_time(incident.get("started_at") or incident.get("created_at")),
                    ended_at=None if firing else parse_time(incident.get("resolved_at")),
                    summary=text(incident.get("name")),
                    link=text(incident.get("shortlink") or incident.get("url")),
                )
            ]
        )
