"""Did the request leave? One answer for every provider and publisher.

A failure below HTTP is sorted by whether any byte of the request can have reached the other
side, because that decides what a caller may do next:

- ``NEVER_LEFT``: the connection was never usable. Connection refused, DNS failure, a connect
  timeout, a TLS handshake that failed (bad certificate, wrong protocol, the peer closing during
  the handshake), a proxy that refused or could not be reached. Retrying cannot duplicate
  anything: retry (a provider defers the message; a publisher retries the post).
- ``MAY_HAVE_LEFT``: the request was (or may have been) written and no answer came. A read
  timeout, a connection reset or closed after sending, a TLS error after the handshake, a broken
  chunked answer. The provider may have acted: the outcome is unknown and is never retried blind.

requests (used by anymail, the twilio client and the publishers) and aiohttp (web push) wrap the
socket errors differently; both are unwrapped here. A TLS error is a handshake failure only when
the TLS library raised it from its handshake (or it is a certificate verification failure):
urllib3 reports a TLS error while reading the answer with the same exception class as one while
connecting, and that one may follow a request that left.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError


class Transport(enum.StrEnum):
    NEVER_LEFT = "never_left"
    MAY_HAVE_LEFT = "may_have_left"


@dataclass(frozen=True)
class TransportVerdict:
    """What a transport failure means: whether the request left, and a short reason to show."""

    transport: Transport
    reason: str

    @property
    def never_left(self) -> bool:
        return self.transport == Transport.NEVER_LEFT


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (cause, context, args, urllib3's ``reason``)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested += list(getattr(current, "args", ()))
        # aiohttp keeps the OS error of a failed connect in os_error.
        nested.append(getattr(current, "os_error", None))
        stack.extend(n for n in nested if isinstance(n, BaseException))


def _raised_in(exc: BaseException, function: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            return True
        tb = tb.tb_next
    return False


def _tls_handshake_failed(exc: BaseException) -> bool:
    if isinstance(exc, ssl.SSLCertVerificationError | ssl.CertificateError):
        return True
    return isinstance(exc, ssl.SSLError) and _raised_in(exc, "do_handshake")


# Checked in this order over everything the failure wraps: the first match decides. Causes
# that prove the connection never opened come first, since a request that never left can still
# surface as a generic "connection error" or timeout further out.
_NEVER_LEFT: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((NameResolutionError,), "DNS lookup failed"),
    ((ConnectionRefusedError,), "connection refused"),
    # urllib3 raises ProxyError only while connecting to the proxy or opening its tunnel, before
    # the request is written (requests wraps it as its own ProxyError).
    ((requests.exceptions.ProxyError, Urllib3ProxyError), "proxy refused or unreachable"),
    ((aiohttp.ClientProxyConnectionError,), "proxy refused or unreachable"),
    ((requests.exceptions.ConnectTimeout, ConnectTimeoutError), "connect timeout"),
    ((aiohttp.ConnectionTimeoutError,), "connect timeout"),
    ((NewConnectionError,), "could not connect"),
    # aiohttp raises these (DNS, refused, certificate, handshake) while connecting only.
    ((aiohttp.ClientConnectorError,), "could not connect"),
)
_MAY_HAVE_LEFT: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((requests.exceptions.ReadTimeout, aiohttp.SocketTimeoutError), "read timeout"),
    ((TimeoutError,), "timeout"),
    ((ssl.SSLError,), "TLS error after the handshake"),
)


def transport_error_sort(exc: BaseException) -> TransportVerdict:
    """Sort a transport-level failure (requests, urllib3, aiohttp or a plain OSError)."""
    causes = list(_causes(exc))
    if any(_tls_handshake_failed(cause) for cause in causes):
        return TransportVerdict(Transport.NEVER_LEFT, "TLS handshake failed")
    for table, transport in (
        (_NEVER_LEFT, Transport.NEVER_LEFT),
        (_MAY_HAVE_LEFT, Transport.MAY_HAVE_LEFT),
    ):
        for kinds, reason in table:
            if any(isinstance(cause, kinds) for cause in causes):
                return TransportVerdict(transport, reason)
    return TransportVerdict(Transport.MAY_HAVE_LEFT, "connection failed or closed")


def request_never_left(exc: BaseException) -> bool:
    """True when no byte of the request can have reached the provider (safe to retry)."""
    return transport_error_sort(exc).never_left
