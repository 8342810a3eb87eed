"""Login throttling: django-axes locks a user name from one address after repeated failures.

Axes counts failures in PostgreSQL (its database handler), so every web process sees the same
count and the lock survives a Redis outage. This module is the project's side of it: the user
name axes stores is bounded and storable whatever the form held, each failure and each lockout
is written to the audit trail, and a locked-out sign-in gets a 429 page in the admin's look that
says when to come back. Settings: the "login throttling" block in continuity/settings.py.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from continuity.audit import audit_record
from continuity.inputs import text_storable
from continuity.models import AuditOutcome
from continuity.tenancy import Access

logger = logging.getLogger(__name__)

# axes.models.AccessBase.username is a CharField(255); a longer name would fail the INSERT.
USERNAME_MAX = 255

ACTION_LOGIN_FAILED = "auth.login_failed"
ACTION_LOGIN_LOCKED_OUT = "auth.login_locked_out"


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The user name a sign-in attempt named, cut to what axes can store
    (AXES_USERNAME_CALLABLE)."""
    if credentials:
        raw = credentials.get("username")
    else:
        raw = getattr(request, "POST", {}).get("username")
    if raw is None:
        return None
    return text_storable(str(raw))[:USERNAME_MAX]


def _anonymous() -> Access:
    return Access(user=AnonymousUser(), workspace=None, role=None, permissions=frozenset())


def _audit(request: HttpRequest, *, action: str, username: str | None) -> None:
    audit_record(
        access=_anonymous(),
        action=action,
        outcome=AuditOutcome.DENIED,
        # Install-wide: a sign-in belongs to no workspace. The name is what was typed (it may
        # name nobody), so it is detail, never the actor.
        detail={
            "username": username or "",
            "ip": getattr(request, "axes_ip_address", None) or "",
            "user_agent": text_storable(getattr(request, "axes_user_agent", "") or "")[:255],
        },
        actor_label="login",
    )


class AuditedAxesHandler(AxesDatabaseHandler):
    """Axes' database handler, plus one audit row per counted failure and per lockout."""

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        if request is None:
            super().user_login_failed(sender, credentials, request, **kwargs)
            return
        # A header axes copies into its row may hold NUL, which PostgreSQL text cannot store.
        request.axes_user_agent = text_storable(request.axes_user_agent or "")
        # Set by the backend when it refused an already locked-out name: that attempt is neither
        # counted nor audited again, so hammering a locked name grows no table.
        already_locked = bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request, **kwargs)
        if already_locked:
            return
        username = get_client_username(request, credentials)
        locked_now = bool(getattr(request, "axes_locked_out", False))
        _audit(
            request,
            action=ACTION_LOGIN_LOCKED_OUT if locked_now else ACTION_LOGIN_FAILED,
            username=username,
        )
        if locked_now:
            logger.warning(
                "sign-in locked out after repeated failures",
                extra={"ip": request.axes_ip_address},
            )


def _retry_after_s(request: HttpRequest, credentials: dict[str, Any] | None) -> int | None:
    """Seconds until the pair's lock ends: the cool-off runs from its last counted failure
    (attempts made while locked are not counted, so they do not move it)."""
    cool_off = get_cool_off(request)
    if not cool_off:
        return None
    last = None
    for attempts in AxesProxyHandler.get_implementation().get_user_attempts(request, credentials):
        found = attempts.aggregate(last=Max("attempt_time"))["last"]
        if found is not None and (last is None or found > last):
            last = found
    if last is None:
        return math.ceil(cool_off.total_seconds())
    return max(1, math.ceil((last + cool_off - timezone.now()).total_seconds()))


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: a 429 page in the admin's look, with Retry-After."""
    retry_after = _retry_after_s(request, credentials)
    context = {
        **admin.site.each_context(request),
        "title": "",
        "retry_after_minutes": math.ceil(retry_after / 60) if retry_after else None,
    }
    response = TemplateResponse(request, "continuity/login_locked_out.html", context, status=429)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response.render()
