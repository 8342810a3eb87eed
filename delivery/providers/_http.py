"""Sorting transport failures: did the request leave, or not?"""

from __future__ import annotations

import random

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError


def request_never_left(exc: BaseException) -> bool:
    """True when the failure happened before the provider could have read the request.

    Connection refused, DNS failure and connect timeouts are safe to retry; a read timeout or a
    connection dropped after the request was written is ambiguous and must become unknown.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            NewConnectionError | NameResolutionError | ConnectTimeoutError | ConnectionRefusedError,
        ):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        current = nested or current.__cause__ or current.__context__
    return False


def backoff_s(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential back-off with full jitter, so retrying workers do not march in step."""
    return random.uniform(0, min(cap_s, base_s * (2**attempt)))  # noqa: S311 - jitter, not crypto  # nosec B311
