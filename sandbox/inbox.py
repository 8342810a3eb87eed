"""What each running sandbox fake received, read over HTTP, and its fault switch, for the admin.

Only loopback addresses are asked: when a setting points at a real provider there is no sandbox
to read, and the page must never send anything to the internet.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext as _

from sandbox.base import CONTROL_PREFIX, FAULT_MODES

# What the inbox page offers: "refuse" cannot be set over HTTP (the fake would stop listening).
INBOX_FAULT_MODES: tuple[str, ...] = tuple(m for m in FAULT_MODES if m != "refuse")


@dataclass(frozen=True)
class SandboxEndpoint:
    name: str
    label: str
    base_url: str

    @property
    def is_local(self) -> bool:
        host = urlsplit(self.base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@dataclass
class SandboxMessage:
    """One message a fake accepted, as a person would get it."""

    kind: str
    at: datetime | None
    to: str
    sender: str
    title: str
    body: str
    html: str


@dataclass
class SandboxInbox:
    endpoint: SandboxEndpoint
    running: bool
    detail: str = ""
    count: int = 0
    items: list[SandboxMessage] = field(default_factory=list)


def _root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def sandbox_endpoints() -> list[SandboxEndpoint]:
    failover = settings.DELIVERY_EMAIL_FAILOVER_OPTIONS.get("api_url", "")
    return [
        SandboxEndpoint(
            "sendgrid", _("SendGrid (email)"), _root(str(settings.ANYMAIL["SENDGRID_API_URL"]))
        ),
        SandboxEndpoint("failover", _("Failover ESP (email)"), _root(str(failover))),
        SandboxEndpoint("twilio", _("Twilio (SMS)"), _root(settings.TWILIO_API_BASE_URL)),
        SandboxEndpoint("push", _("Web push service"), _root(settings.SANDBOX_PUSH_BASE_URL)),
        SandboxEndpoint(
            "graph",
            _("Graph (Facebook, Instagram, WhatsApp)"),
            _root(settings.SOCIAL_GRAPH_BASE_URL),
        ),
        SandboxEndpoint("x", "X", _root(settings.SOCIAL_X_BASE_URL)),
    ]


def _message(item: dict[str, Any]) -> SandboxMessage:
    at = item.get("at")
    return SandboxMessage(
        kind=str(item.get("kind", "")),
        at=datetime.fromtimestamp(at, tz=UTC) if isinstance(at, int | float) else None,
        to=str(item.get("to", "")),
        sender=str(item.get("from", "")),
        title=str(item.get("title", "")),
        body=str(item.get("body", "")),
        html=str(item.get("html", "")),
    )


def _read(endpoint: SandboxEndpoint, *, offset: int, limit: int) -> SandboxInbox:
    if not endpoint.is_local:
        return SandboxInbox(endpoint, False, _("a real provider is configured: no sandbox to read"))
    try:
        response = requests.get(
            endpoint.base_url + CONTROL_PREFIX + "messages",
            params={"offset": offset, "limit": limit},
            timeout=settings.SANDBOX_INBOX_TIMEOUT_S,
        )
        listing = response.json()
    except (requests.RequestException, ValueError) as exc:
        return SandboxInbox(
            endpoint, False, _("not running (%(error)s)") % {"error": type(exc).__name__}
        )
    if response.status_code != 200 or not isinstance(listing, dict):
        detail = _("not a sandbox fake (HTTP %(status)s)") % {"status": response.status_code}
        return SandboxInbox(endpoint, False, detail)
    items = [_message(i) for i in listing.get("items", []) if isinstance(i, dict)]
    return SandboxInbox(endpoint, True, "", int(listing.get("count", 0)), items)


def sandbox_inboxes_read(
    *, selected: str = "", offset: int = 0, limit: int = 20
) -> list[SandboxInbox]:
    """Every fake's message count, and a page of the selected fake's messages (newest first),
    asked in parallel so a dead fake costs one short timeout."""
    endpoints = sandbox_endpoints()
    with ThreadPoolExecutor(max_workers=len(endpoints)) as pool:
        return list(
            pool.map(
                lambda e: _read(
                    e,
                    offset=offset if e.name == selected else 0,
                    limit=limit if e.name == selected else 0,
                ),
                endpoints,
            )
        )


class SandboxControlError(Exception):
    pass


def sandbox_fault_set(*, name: str, mode: str) -> str:
    """Switch one fake's fault mode (the demo's "make SendGrid fail"); returns what it said."""
    endpoint = next((e for e in sandbox_endpoints() if e.name == name), None)
    if endpoint is None:
        raise SandboxControlError(_("no sandbox fake named %(name)r") % {"name": name})
    if mode not in INBOX_FAULT_MODES:
        raise SandboxControlError(
            _("mode must be one of %(modes)s") % {"modes": ", ".join(INBOX_FAULT_MODES)}
        )
    if not endpoint.is_local:
        raise SandboxControlError(
            _("%(fake)s points at a real provider") % {"fake": endpoint.label}
        )
    payload: dict[str, Any] = {"mode": mode}
    if mode in ("slow", "timeout"):
        payload["delay_s"] = 5.0
    if mode == "error":
        payload["status"] = 503
    try:
        response = requests.post(
            endpoint.base_url + CONTROL_PREFIX + "fault",
            json=payload,
            timeout=settings.SANDBOX_INBOX_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        raise SandboxControlError(_("%(fake)s is not running") % {"fake": endpoint.label}) from exc
    if response.status_code != 200:
        raise SandboxControlError(
            _("%(fake)s refused: %(answer)s")
            % {"fake": endpoint.label, "answer": response.text[:200]}
        )
    return _("%(fake)s: fault mode %(mode)s") % {"fake": endpoint.label, "mode": mode}
