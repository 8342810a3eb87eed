"""The open-outages banner shown on every admin page, to every staff user: a network being down
is not secret. Only those who may open a window (operators) get links to it."""

from __future__ import annotations

from typing import Any

from django import template

from outages.selectors import open_windows, silent_windows

register = template.Library()


@register.inclusion_tag("outages/banner.html", takes_context=True)
def outages_banner(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_staff", False):
        return {"windows": []}
    silent = {row.window_id: row.message for row in silent_windows()}
    # A lost resolve must not hold a network down unnoticed: say since when nothing came.
    windows = [(window, silent.get(window.pk, "")) for window in open_windows()]
    return {
        "windows": windows,
        "can_open": user.has_perm("outages.view_outagewindow"),
    }
