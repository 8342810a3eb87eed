"""Uptime Kuma webhook notification: {heartbeat, monitor, msg}.

heartbeat.status: 0 down, 1 up, 2 pending, 3 maintenance. Pending and maintenance are not
outages; unknown numbers are accepted and ignored (a newer Kuma must not make us refuse calls),
a value of another type ("0", true, null) is a 400 naming it.
The "Test" button sends heartbeat and monitor as null. Kuma cannot sign, so it sends a bearer
token through its "Additional Headers" setting.
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
    text,
)

DOWN, UP, PENDING, MAINTENANCE = 0, 1, 2, 3


class UptimeKumaNormaliser(Normaliser):
    kind = "uptime_kuma"
    auth = "bearer"

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        if "heartbeat" not in payload and "monitor" not in payload:
            raise Invalid("Uptime Kuma body is missing required fields 'heartbeat' and 'monitor'")
        heartbeat, monitor = payload.get("heartbeat"), payload.get("monitor")
        if heartbeat is None and monitor is None:
            return Normalised(notes=[f"test notification: {text(payload.get('msg'), 200)}"])
        if not isinstance(heartbeat, dict) or not isinstance(monitor, dict):
            raise Invalid("Uptime Kuma 'heartbeat' and 'monitor' must be objects")
        if "status" not in heartbeat:
            raise Invalid("Uptime Kuma body is missing required field 'heartbeat.status'")
        status = heartbeat["status"]
        if not isinstance(status, int) or isinstance(status, bool):
            # Kuma sends a number; "0" or true is a sender bug, refused so it shows up rather
            # than being taken for an unknown status and silently ignored.
            raise Invalid(
                "Uptime Kuma 'heartbeat.status' must be an integer (0 down, 1 up, 2 pending, "
                f"3 maintenance), got {type(status).__name__} {str(status)[:40]!r}"
            )
        if status in (PENDING, MAINTENANCE):
            label = "pending" if status == PENDING else "maintenance"
            return Normalised(notes=[f"heartbeat status {status} ({label}) is not an outage"])
        if status not in (DOWN, UP):
            return Normalised(notes=[f"unknown heartbeat status {status!r}: ignored"])
        monitor_id = monitor.get("id", heartbeat.get("monitorID"))
        if monitor_id is None:
            raise Invalid("Uptime Kuma body is missing required field 'monitor.id'")
        at = parse_time(heartbeat.get("time"))
        attributes = {
            "monitor.id": str(monitor_id),
            "monitor.name": text(monitor.get("name")),
            "monitor.url": text(monitor.get("url")),
            "monitor.hostname": text(monitor.get("hostname")),
            "monitor.type": text(monitor.get("type")),
        }
        firing = status == DOWN
        return Normalised(
            signals=[
                RawSignal(
                    firing=firing,
                    incident_key=f"monitor:{monitor_id}",
                    attributes=attributes,
                    started_at=at if firing else None,
                    ended_at=None if firing else at,
                    summary=text(payload.get("msg") or heartbeat.get("msg")),
                    link=text(monitor.get("url")),
                )
            ]
        )
