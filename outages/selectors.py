"""Reads other apps need: is a network down, and which window covers it."""

from __future__ import annotations

from django.db.models import QuerySet

from outages.models import OutageWindow, WindowState
from outages.windows import SilentWindow, windows_silent


def open_window_for(*, network: str) -> OutageWindow | None:
    return OutageWindow.objects.filter(network=network, state=WindowState.OPEN).first()


def network_is_down(*, network: str) -> bool:
    return OutageWindow.objects.filter(network=network, state=WindowState.OPEN).exists()


def open_windows() -> QuerySet[OutageWindow]:
    return OutageWindow.objects.filter(state=WindowState.OPEN).order_by("opened_at")


def silent_windows() -> list[SilentWindow]:
    """Open windows with no news from any monitor holding them past its repeat limit, for the
    banner and dashboard: each has ``network``, ``last_news_at``, ``message`` ("no news from
    the monitor since ...") and ``auto_close`` (the beat task will close it)."""
    return windows_silent()
