"""Who is asking: the client's IP address, trusting X-Forwarded-For only from configured proxies.

X-Forwarded-For is whatever the client wrote, plus one entry per proxy it went through. Only
the entries our own proxies appended can be believed, so the chain is read from the right: the
peer (REMOTE_ADDR) and every hop that is itself a trusted proxy is skipped, and the first
address that is not one of ours is the client. With no TRUSTED_PROXIES the header is ignored
and REMOTE_ADDR is the client. Login throttling (django-axes), the rate limits
(continuity/throttle.py) and consent evidence all read the address here.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(configured: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in configured)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    """The TRUSTED_PROXIES setting as networks (addresses or CIDR ranges)."""
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    # "[v6]:port" and "v4:port" appear in some proxies' headers.
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as text, or None when the peer's address is not an IP at all."""
    peer = _address(request.META.get("REMOTE_ADDR", "") or "")
    if peer is None:
        return None
    networks = trusted_proxies()
    if not networks or not _trusted(peer, networks):
        return str(peer)
    closest = peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _address(hop)
        if address is None:
            # A hop we cannot read was written by someone we do not trust: the last proxy we
            # do trust is the best we know.
            return str(closest)
        if not _trusted(address, networks):
            return str(address)
        closest = address
    return str(closest)
