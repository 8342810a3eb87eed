"""The base of every API view: resolves the workspace once and checks the permission each HTTP
method declares (continuity/api_auth.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils.translation import gettext as _
from rest_framework.request import Request
from rest_framework.views import APIView

from continuity.api_auth import ANY_MEMBER, DeclaredPermission, view_access
from continuity.api_parsers import fields_storable_check
from continuity.models import Workspace
from continuity.tenancy import Access

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass

__all__ = ["ANY_MEMBER", "InstallAPIView", "WorkspaceAPIView", "WorkspaceViewMixin"]


class WorkspaceViewMixin:
    """Makes a DRF view workspace-scoped: subclasses declare ``permission_map`` = {HTTP method:
    "app.codename" or ANY_MEMBER}; a method left out answers 405, and the permission matrix test
    fails for a view that declares none. Querysets come from ``self.workspace``."""

    permission_classes: Sequence[_PermissionClass] = [DeclaredPermission]
    permission_map: ClassVar[dict[str, str]] = {}
    install_wide: ClassVar[bool] = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        # After authentication and the permission check: a caller without a key learns nothing.
        fields_storable_check(request.query_params, what=_("Query parameter"))

    @property
    def access(self) -> Access:
        return view_access(self.request, self)  # type: ignore[attr-defined, arg-type]

    @property
    def workspace(self) -> Workspace:
        return self.access.workspace_required


class WorkspaceAPIView(WorkspaceViewMixin, APIView):
    """Base of every workspace-scoped APIView."""


class InstallAPIView(WorkspaceAPIView):
    """Base of install-wide endpoints (outages): the permission is the user's own (operators)."""

    install_wide = True
