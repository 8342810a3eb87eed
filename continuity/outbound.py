"""The outbound-request guard: every request the server sends to an address a user supplied
(push endpoints today) goes through it.

Two checks, both required:

- ``outbound_url_check`` on the URL itself (when it is stored and again before it is used):
  https only, no user info, no IP literal, the host on the caller's allow-list. The one exception
  is the sandbox's own loopback base URL, and only while the sandbox is enabled.
- ``GuardedResolver`` at connect time: aiohttp connects to exactly the addresses a resolver
  returns, so vetting them there (not in a separate earlier lookup) defeats DNS rebinding, while
  aiohttp keeps the name for the Host header and TLS SNI. Every resolved address must be global:
  loopback, private, link-local, multicast, reserved, shared and unspecified ranges are refused.

Sessions from ``outbound_session`` ignore proxy variables from the environment, and callers must
pass ``allow_redirects=False``: a redirect would take the request to an address nobody vetted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from django.utils.translation import gettext as _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# RFC 6052 well-known NAT64 prefix: the IPv4 address inside is where the packet really goes.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundRefused(OSError):
    """A URL or a resolved address the guard will not send to. ``reason`` is for people.

    An OSError so that aiohttp, which wraps resolver OSErrors in ``ClientConnectorDNSError``,
    hands it back as ``os_error`` instead of losing it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        # Both raise ValueError on input a browser would never send ("https://[::1", port 99999).
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    for entry in allowed_hosts:
        pattern = entry.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            # A wildcard covers subdomains only: "*.notify.windows.com" is not "notify.windows.com".
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif pattern and host == pattern:
            return True
    return False


def _looks_like_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # No top-level domain is numeric: "127.1", "2130706433" and "0x7f.1" are addresses that
        # getaddrinfo would accept in legacy forms.
        last = host.rsplit(".", 1)[-1]
        return last.isdigit() or last.startswith("0x")
    return True


def outbound_url_check(
    *, url: str, allowed_hosts: Sequence[str] | None, sandbox_base_url: str = ""
) -> None:
    """Raise OutboundRefused unless ``url`` may be requested. ``allowed_hosts`` (exact names or
    ``*.suffix``) limits the hosts; None allows any public name. ``sandbox_base_url``: the one
    loopback origin allowed as it is (pass it only while the sandbox is enabled)."""
    if len(url) > 2000:
        raise OutboundRefused(_("the URL is too long"))
    origin = _origin(url)
    if origin is None:
        raise OutboundRefused(_("the URL has no usable host"))
    if sandbox_base_url and origin == _origin(sandbox_base_url):
        return
    parts = urlsplit(url)  # parsed once already by _origin, so it cannot raise here
    scheme, host, _port = origin
    host = host.rstrip(".")
    if scheme != "https":
        raise OutboundRefused(_("only https URLs are allowed"))
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(_("the URL must not carry a user name or password"))
    if _looks_like_ip(host):
        raise OutboundRefused(_("the host must be a name, not an IP address"))
    if allowed_hosts is not None and not _host_allowed(host, allowed_hosts):
        raise OutboundRefused(_("%(host)s is not an allowed host") % {"host": host})


def outbound_address_check(*, address: str) -> None:
    """Raise OutboundRefused unless ``address`` (an IP) is a public unicast address."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise OutboundRefused(
            _("%(address)s is not an IP address") % {"address": address}
        ) from None
    if isinstance(ip, ipaddress.IPv6Address):
        # The IPv4 address inside a mapped, 6to4 or NAT64 address is where the packet goes.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        raise OutboundRefused(_("%(address)s is not a public address") % {"address": str(ip)})


async def outbound_resolve(host: str, port: int, family: int) -> list[tuple[int, str]]:
    """(family, address) pairs for ``host``: the single place names are looked up (tests patch it
    to stand in for DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
    return [(info[0], str(info[4][0])) for info in infos]


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a host if any address it resolves to is not public.

    ``allow`` lists (host, port) pairs resolved without the address check: the sandbox's own
    loopback service when it is named rather than given as an IP."""

    def __init__(self, *, allow: Iterable[tuple[str, int]] = ()) -> None:
        self.allow = frozenset((h.lower(), p) for h, p in allow)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # A lookup failure (socket.gaierror, an OSError) propagates: aiohttp reports it as a DNS
        # error, which the caller treats as "not reached", not as a refusal.
        pairs = await outbound_resolve(host, port, family)
        if not pairs:
            raise OutboundRefused(_("%(host)s resolves to no address") % {"host": host})
        if (host.lower().rstrip("."), port) not in self.allow:
            # Every address, not just the first: aiohttp tries them all in turn.
            for _family, address in pairs:
                try:
                    outbound_address_check(address=address)
                except OutboundRefused as exc:
                    raise OutboundRefused(
                        _("%(host)s resolves to a refused address: %(reason)s")
                        % {"host": host, "reason": exc.reason}
                    ) from None
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": af,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for af, address in pairs
        ]

    async def close(self) -> None:
        return None


def outbound_session(
    *, limit: int, allow: Iterable[tuple[str, int]] = (), **session_kwargs: Any
) -> aiohttp.ClientSession:
    """A ClientSession whose connections go only to vetted addresses (see GuardedResolver)."""
    connector = aiohttp.TCPConnector(limit=limit, resolver=GuardedResolver(allow=allow))
    return aiohttp.ClientSession(connector=connector, trust_env=False, **session_kwargs)


def outbound_refusal(exc: BaseException) -> OutboundRefused | None:
    """The guard's refusal inside an aiohttp connection error, if that is what it was."""
    if isinstance(exc, OutboundRefused):
        return exc
    inner = getattr(exc, "os_error", None) or exc.__cause__
    return inner if isinstance(inner, OutboundRefused) else None


def push_endpoint_check(*, url: str) -> None:
    """Raise OutboundRefused unless ``url`` is an endpoint of a known push service (the
    DELIVERY_PUSH_ALLOWED_HOSTS setting) or, with the sandbox on, of the sandbox push service."""
    outbound_url_check(
        url=url,
        allowed_hosts=settings.DELIVERY_PUSH_ALLOWED_HOSTS,
        sandbox_base_url=settings.SANDBOX_PUSH_BASE_URL if settings.SANDBOX_ENABLED else "",
    )


def push_sandbox_allow() -> list[tuple[str, int]]:
    """The (host, port) of the sandbox push service while the sandbox is on, else nothing."""
    if not settings.SANDBOX_ENABLED:
        return []
    origin = _origin(settings.SANDBOX_PUSH_BASE_URL)
    return [(origin[1], origin[2])] if origin else []
