"""Helpers the providers share. Whether a failed request left is delivery.transport's one rule,
re-exported here for the provider modules that import it from this module."""

from __future__ import annotations

import random

from delivery.transport import request_never_left

__all__ = ["backoff_s", "request_never_left"]


def backoff_s(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential back-off with full jitter, so retrying workers do not march in step."""
    return random.uniform(0, min(cap_s, base_s * (2**attempt)))  # noqa: S311 - jitter, not crypto  # nosec B311
