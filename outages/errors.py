"""The outages app's error root, mapped once to the API error shape by continuity.api."""

from __future__ import annotations

from continuity.api import ContinuityError


class OutagesError(ContinuityError):
    code = "outages_error"
    status_code = 400


class UnknownNetwork(OutagesError):
    code = "unknown_network"


class WindowNotOpen(OutagesError):
    code = "window_not_open"
    status_code = 409
