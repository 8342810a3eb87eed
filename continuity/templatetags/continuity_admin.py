"""The admin's workspace switcher, shown in the header of every admin page."""

from __future__ import annotations

from typing import Any

from django import template

from continuity.admin_access import request_workspace
from continuity.tenancy import workspaces_of

register = template.Library()


@register.inclusion_tag("continuity/admin/workspace_switcher.html", takes_context=True)
def workspace_switcher(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return {"workspaces": []}
    return {
        "workspaces": list(workspaces_of(user).order_by("name", "pk")),
        "current": request_workspace(request),
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }
