"""API authentication and permission. Kept apart from views: DRF imports these classes from its
settings while rest_framework.views is still loading.

One base view resolves the workspace once and each view declares the permission every HTTP method
needs (Sentry's scope map), so a route cannot forget it. Tokens are ``continuity.ApiKey`` rows
(djangorestframework-api-key: only a hash is stored, with expiry and revocation), sent as
``Authorization: Bearer <key>``. A browser session works too and acts in the workspace chosen in
the admin's switcher.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from continuity.admin_access import request_workspace as session_workspace
from continuity.models import ApiKey, Workspace
from continuity.tenancy import Access, MissingPermission, access_for

if TYPE_CHECKING:
    from rest_framework.views import APIView

# last_used_at is written at most this often per key: a busy integration must not turn every
# read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _sep, key = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        key = key.strip()
        if not key or len(key) > 200 or "." not in key:
            raise exceptions.AuthenticationFailed(_("Malformed API key."))
        prefix = key.partition(".")[0]
        api_key = ApiKey.objects.select_related("user", "workspace").filter(prefix=prefix).first()
        if api_key is None or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed(_("Unknown API key."))
        if api_key.revoked:
            raise exceptions.AuthenticationFailed(_("This API key was revoked."))
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed(_("This API key has expired."))
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed(_("This API key's user is inactive."))
        now = timezone.now()
        if api_key.last_used_at is None or api_key.last_used_at < now - _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return self.keyword


def request_workspace(request: Request) -> Workspace | None:
    if isinstance(request.auth, ApiKey):
        return request.auth.workspace
    return session_workspace(request._request)


class DeclaredPermission(BasePermission):
    """Checks the permission the view declares for the request's method; none declared: denied."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        perm = getattr(view, "permission_map", {}).get(request.method or "")
        if perm is None and request.method == "OPTIONS":
            return True
        # The caller's standing first: a key whose user left the workspace is 401 on every
        # method, declared or not.
        access = view_access(request, view)
        if perm is None:
            raise exceptions.MethodNotAllowed(request.method or "")
        if perm != ANY_MEMBER:
            try:
                access.require(perm)
            except MissingPermission as exc:
                raise exceptions.PermissionDenied(str(exc)) from None
        return True


# A method every member of the workspace may call, whatever their role.
ANY_MEMBER = "*"


def view_access(request: Request, view: APIView) -> Access:
    """Resolves the caller's access once per request and keeps it on the view."""
    cached = getattr(view, "_access", None)
    if cached is not None:
        return cached
    if getattr(view, "install_wide", False):
        # The user's own (operator) rights; a workspace key still has to be a member's key.
        if isinstance(request.auth, ApiKey) and request.auth.workspace is not None:
            _member_access(request, request.auth.workspace)
        access = Access(user=request.user, workspace=None, role=None, permissions=frozenset())
    else:
        workspace = request_workspace(request)
        if workspace is None:
            raise exceptions.PermissionDenied(
                _("This request acts in no workspace: use a workspace's API key.")
            )
        access = _member_access(request, workspace)
    view._access = access  # type: ignore[attr-defined]
    return access


def _member_access(request: Request, workspace: Workspace) -> Access:
    try:
        return access_for(request.user, workspace)
    except Http404:
        # A key whose user left the workspace: the key is no longer any good.
        raise exceptions.AuthenticationFailed(_("Not a member of this workspace.")) from None
