"""Reads other apps need: is a network down, and which window covers it."""

from __future__ import annotations

from django.db.models import QuerySet

from outages.models import OutageWindow, WindowState


def open_window_for(*, network: str) -> OutageWindow | None:
    return OutageWindow.objects.filter(network=network, state=WindowState.OPEN).first()


def network_is_down(*, network: str) -> bool:
    return OutageWindow.objects.filter(network=network, state=WindowState.OPEN).exists()


def open_windows() -> QuerySet[OutageWindow]:
    return OutageWindow.objects.filter(state=WindowState.OPEN).order_by("opened_at")
