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
        components = incident_components(incident)
        impact = text(incident.get("impact")).strip().lower()
        in_outage = [cid for cid, c in components.items() if c["status"] in FIRING_COMPONENT]
        notes: list[str] = []
        release_only = False
        if firing and impact == "none" and not in_outage:
            # Statuspage's own words for "no outage": an update that changes nothing for
            # anyone (or was downgraded to that) ends the incident's hold, if it had one.
            firing, release_only = False, True
            notes.append("incident impact 'none' with every component operational: not an outage")
        attributes = {
            **page,
            "incident.id": str(incident_id),
            "incident.name": text(incident.get("name")),
            "incident.impact": impact,
        }
        if components:
            attributes["component.id"] = next(iter(components))
        updated = parse_time(incident.get("resolved_at") if not firing else None) or parse_time(
            incident.get("updated_at")
        )
        signals = [
            RawSignal(
                firing=firing,
                incident_key=f"incident:{incident_id}",
                attributes=attributes,
                started_at=parse_time(incident.get("started_at") or incident.get("created_at")),
                ended_at=None if firing else updated,
                summary=text(incident.get("name")) or f"incident {incident_id}",
                link=text(incident.get("shortlink") or incident.get("url")),
                release_only=release_only,
            )
        ]
        # The update speaks for the components it lists: those it reports back to a
        # non-outage status release the component signals their component_update opened
        # (a lost "operational" component_update must not hold a window for good).
        for component_id, component in components.items():
            if component["status"] in FIRING_COMPONENT:
                continue
            signals.append(
                RawSignal(
                    firing=False,
                    incident_key=f"component:{component_id}",
                    attributes={
                        **page,
                        "component.id": component_id,
                        "component.name": component["name"],
                        "component.status": component["status"],
                    },
                    ended_at=updated,
                    summary=f"{component['name'] or component_id}: {component['status']}",
                    link=page.get("page.url", ""),
                    release_only=True,
                )
            )
        return Normalised(signals=signals, notes=notes)


def incident_components(incident: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The components an incident payload reports, id -> {status, name}, lower-cased statuses.

    ``incident.components`` holds their current state; the newest ``incident_updates`` entry's
    ``affected_components`` (``code``, ``new_status``) fills in any it does not list.
    """
    found: dict[str, dict[str, str]] = {}
    listed = incident.get("components")
    for component in listed if isinstance(listed, list) else []:
        if isinstance(component, dict) and component.get("id") not in (None, ""):
            found[text(component["id"], 200)] = {
                "status": text(component.get("status"), 64).strip().lower(),
                "name": text(component.get("name"), 200),
            }
    updates = incident.get("incident_updates")
    dated = [
        u
        for u in (updates if isinstance(updates, list) else [])
        if isinstance(u, dict) and isinstance(u.get("affected_components"), list)
    ]
    if dated:
        newest = max(dated, key=lambda u: text(u.get("created_at") or u.get("updated_at"), 64))
        for affected in newest["affected_components"]:
            if not isinstance(affected, dict) or affected.get("code") in (None, ""):
                continue
            found.setdefault(
                text(affected["code"], 200),
                {
                    "status": text(affected.get("new_status"), 64).strip().lower(),
                    "name": text(affected.get("name"), 200),
                },
            )
    return found
