"""The admin's time zone: the session's workspace's.

Times are stored in UTC; the admin shows and reads them in the time zone of the workspace the
session acts in (``Workspace.timezone``, else the install's TIME_ZONE), so a marketer in Rome
reads 09:00 for a campaign due at 09:00 Rome time. Only the admin: the API speaks ISO 8601 with
an offset, which DRF writes in the active time zone, and its clients expect UTC there.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from continuity.admin_access import request_workspace

ADMIN_PREFIX = "/admin/"


def workspace_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone named ``name``, None for an empty or unknown name (a value edited by hand must
    not turn the admin into a 500)."""
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class WorkspaceTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(ADMIN_PREFIX) or not request.user.is_authenticated:
            return self.get_response(request)
        workspace = request_workspace(request)
        zone = workspace_zone(workspace.timezone) if workspace is not None else None
        timezone.activate(zone or zoneinfo.ZoneInfo(settings.TIME_ZONE))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
