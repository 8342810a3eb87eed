"""What Facebook, Instagram and WhatsApp share: the Graph API's host, version and error JSON.

Graph errors look like {"error": {"message", "type", "code", "error_subcode", "fbtrace_id",
"is_transient"?}} and the code, not the HTTP status, says what happened: Graph answers most
errors with 400 whatever their nature. See docs/publishers.md for the table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings

from delivery.publishers.base import (
    ConnectionStatus,
    HttpCall,
    HttpPublisher,
    PublishError,
    PublishPermanent,
    PublishThrottled,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    retry_after_seconds,
    text_normalized,
)

TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})
# 4 app, 17 user, 32 page, 341 app limit, 613 calls per hour; 80001-80014 business use case;
# 130429 WhatsApp throughput, 131048 WhatsApp spam rate, 131056 WhatsApp pair rate.
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 130429, 131048, 131056, *range(80001, 80015)})
REAUTH_CODES = frozenset({102, 190, 10, *range(200, 300)})
POLICY_CODE = 368
DUPLICATE_CODE = 506

# Subcodes of 190 (and 102), as Graph documents them, so the marketer reads why.
TOKEN_SUBCODES = {
    458: "the app is not installed for this user",
    459: "the user must log in to Facebook to fix a checkpoint",
    460: "the password was changed",
    463: "the access token has expired",
    464: "the user is not confirmed",
    467: "the access token is invalid",
    492: "the session is invalid",
}


def graph_url(account: SocialAccountRef, *path: str) -> str:
    base = (account.base_url or settings.SOCIAL_GRAPH_BASE_URL).rstrip("/")
    return "/".join([base, settings.SOCIAL_GRAPH_API_VERSION, *path])


def graph_time(value: str) -> datetime | None:
    """Graph timestamps look like 2026-11-24T09:00:00+0000."""
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(value, fmt).astimezone(UTC)
        except (TypeError, ValueError):
            continue
    return None


def graph_error(  # noqa: PLR0911 - one return per row of the taxonomy reads best
    response: requests.Response, *, network: str, sends: bool
) -> PublishError:
    """The taxonomy for one non-2xx Graph answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    status = response.status_code
    if not isinstance(error, dict):
        return _by_status(status, response.headers, network=network, detail="no Graph error body")
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    message = str(error.get("message") or "Graph error")[:500]
    common: dict[str, Any] = {
        "network": network,
        "http_status": status,
        "code": code,
        "subcode": subcode,
        "trace_id": str(error.get("fbtrace_id") or ""),
    }
    if code in THROTTLE_CODES or status == 429:
        return PublishThrottled(
            f"throttled by the API: {message}",
            retry_after_s=_graph_retry_after(response.headers),
            **common,
        )
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        return PublishTransient(f"temporary API failure: {message}", **common)
    if code in REAUTH_CODES:
        why = TOKEN_SUBCODES.get(subcode or 0, "the token was rejected or lacks a permission")
        return PublishPermanent(
            f"reconnect the account: {why} ({message})", needs_reauth=True, **common
        )
    if code == POLICY_CODE:
        return PublishPermanent(f"blocked by policy: {message}", **common)
    if code == DUPLICATE_CODE:
        return PublishPermanent(f"duplicate post refused: {message}", **common)
    if status >= 500:
        if sends and status == 504:
            # A gateway timeout means the backend may still have acted on it.
            return PublishUnknown(f"gateway timeout: {message}", **common)
        return PublishTransient(f"server error: {message}", **common)
    return PublishPermanent(f"request refused: {message}", **common)


def _by_status(status: int, headers: Any, *, network: str, detail: str) -> PublishError:
    if status == 429:
        return PublishThrottled(
            "throttled (HTTP 429)",
            retry_after_s=retry_after_seconds(
                headers, default=settings.SOCIAL_THROTTLE_DEFAULT_RETRY_S
            ),
            network=network,
            http_status=status,
        )
    if status >= 500:
        return PublishTransient(f"server error ({detail})", network=network, http_status=status)
    return PublishPermanent(f"request refused ({detail})", network=network, http_status=status)


def _graph_retry_after(headers: Any) -> float:
    """Graph says when access comes back in X-Business-Use-Case-Usage (minutes, per business
    id and type); Retry-After when a proxy adds it; otherwise the configured default."""
    default = float(settings.SOCIAL_THROTTLE_DEFAULT_RETRY_S)
    raw = headers.get("X-Business-Use-Case-Usage", "")
    minutes: list[float] = []
    if raw:
        try:
            usage = json.loads(raw)
            for entries in usage.values():
                for entry in entries:
                    minutes.append(float(entry.get("estimated_time_to_regain_access", 0)))
        except (ValueError, AttributeError, TypeError):
            minutes = []
    if minutes and max(minutes) > 0:
        return max(minutes) * 60
    return retry_after_seconds(headers, default=default)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class GraphPublisher(HttpPublisher):
    def base_url(self, account: SocialAccountRef) -> str:
        return account.base_url or settings.SOCIAL_GRAPH_BASE_URL

    def error_from_response(self, response: requests.Response, *, sends: bool) -> PublishError:
        return graph_error(response, network=self.network, sends=sends)

    def node_fetch(
        self, account: SocialAccountRef, node_id: str, *, fields: str
    ) -> dict[str, Any] | ConnectionStatus:
        """GET a node for a connection check: its fields, or the failed ConnectionStatus."""
        try:
            return self.call(
                account,
                HttpCall(
                    "GET", graph_url(account, node_id), sends=False, params={"fields": fields}
                ),
            )
        except PublishError as exc:
            return ConnectionStatus(ok=False, detail=str(exc), error=exc)


def graph_oldest_match(
    items: Any, *, time_key: str, text_key: str, wanted: str, since: datetime
) -> str | None:
    """The id of the oldest listed item since `since` whose text matches: that is the one our
    first, unanswered attempt made; a later twin is someone else's."""
    matches = []
    for item in items or []:
        created = graph_time(str(item.get(time_key, "")))
        if created is None or created < since.replace(microsecond=0):
            continue
        if text_normalized(str(item.get(text_key, ""))) == wanted:
            matches.append((created, str(item.get("id"))))
    return min(matches)[1] if matches else None
