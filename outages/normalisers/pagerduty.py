"""PagerDuty v3 webhook subscriptions: {"event": {event_type, occurred_at, data: incident}}.

X-PagerDuty-Signature holds one or more comma-separated "v1=<hex HMAC-SHA256 of the body>"
(several while PagerDuty rotates the secret); any match is valid. X-Webhook-Id identifies the
delivery: PagerDuty redelivers the same bytes under the same id when it saw no 2xx in time, so a
second delivery with a known id is answered 200 and changes nothing (a 4xx would count as one
more failed delivery on PagerDuty's side).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outages.normalisers.base import (
    Invalid,
    Normalised,
    Normaliser,
    RawSignal,
    Unauthorized,
    WebhookRequest,
    hmac_hex,
    parse_time,
    require,
    secrets_match,
    text,
)

FIRING = {
    "incident.triggered",
    "incident.reopened",
    "incident.acknowledged",
    "incident.unacknowledged",
}
RESOLVED = {"incident.resolved"}


class PagerDutyNormaliser(Normaliser):
    kind = "pagerduty"
    auth = "hmac"
    redelivery_is_duplicate = True

    def authenticate(
        self, *, request: WebhookRequest, secrets: list[str], options: Mapping[str, Any]
    ) -> str:
        header = request.headers.get("X-PagerDuty-Signature", "")
        if not header:
            raise Unauthorized("missing X-PagerDuty-Signature header")
        offered = [
            part.strip()[3:].lower() for part in header.split(",") if part.strip().startswith("v1=")
        ]
        if not offered:
            raise Unauthorized("X-PagerDuty-Signature has no v1= signature")
        expected = [hmac_hex(secret, request.body) for secret in secrets]
        if not any(secrets_match(sig, expected) for sig in offered):
            raise Unauthorized("no X-PagerDuty-Signature matches the body signed with our secret")
        webhook_id = request.headers.get("X-Webhook-Id", "").strip()
        return f"pd:{webhook_id}" if webhook_id else ""

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        event = payload.get("event")
        if not isinstance(event, dict):
            raise Invalid("PagerDuty body is missing required field 'event'")
        event_type = str(require(payload, "event.event_type", "PagerDuty"))
        if event_type not in FIRING | RESOLVED:
            return Normalised(notes=[f"event type {event_type!r} does not change an outage"])
        incident = require(payload, "event.data", "PagerDuty")
        incident_id = require(payload, "event.data.id", "PagerDuty")
        service = incident.get("service") if isinstance(incident.get("service"), dict) else {}
        if not service.get("id"):
            raise Invalid("PagerDuty body is missing required field 'event.data.service.id'")
        firing = event_type in FIRING
        at = parse_time(event.get("occurred_at"))
        started_at = None
        if event_type == "incident.reopened":
            # A reopen is a new episode of the same incident, starting when it was reopened:
            # after its incident.resolved it opens the outage again, and a resolve from before
            # the reopen, arriving late, is stale.
            started_at = parse_time(incident.get("reopened_at")) or at
        elif firing:
            # Later events of a reopened incident carry reopened_at; created_at otherwise.
            started_at = parse_time(incident.get("reopened_at")) or parse_time(
                incident.get("created_at")
            )
        attributes = {
            "service.id": str(service["id"]),
            "service.summary": text(service.get("summary")),
            "title": text(incident.get("title")),
            "urgency": text(incident.get("urgency")),
            "event_type": event_type,
        }
        return Normalised(
            signals=[
                RawSignal(
                    firing=firing,
                    incident_key=f"incident:{incident_id}",
                    attributes=attributes,
                    started_at=started_at,
                    ended_at=None if firing else at,
                    summary=text(incident.get("title")),
                    link=text(incident.get("html_url")),
                )
            ]
        )
