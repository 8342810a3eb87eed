"""Whose data it is and what the caller may do with it: the one way to read a workspace's rows.

Every model that belongs to a client has ``workspace`` and ``objects = WorkspaceManager()``; views,
admin pages, tasks and reports read through ``.for_workspace(ws)`` or ``workspace_get_or_404``,
and decide with an ``Access`` (the caller's role in that workspace). Another workspace's row is
"not found", never "forbidden": a 403 would tell the caller it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import models
from django.http import Http404
from django.utils.translation import gettext as _

from continuity.models import Membership, Workspace
from continuity.roles import role_permissions

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

_M = TypeVar("_M", bound=models.Model)


class WorkspaceQuerySet(models.QuerySet[_M], Generic[_M]):
    def for_workspace(self, workspace: Workspace | int) -> WorkspaceQuerySet[_M]:
        workspace_id = workspace if isinstance(workspace, int) else workspace.pk
        return self.filter(workspace_id=workspace_id)


class WorkspaceManager(models.Manager.from_queryset(WorkspaceQuerySet)):  # type: ignore[misc]
    """The manager of every owned model: ``Model.objects.for_workspace(ws)``."""


def workspace_get_or_404(
    queryset: models.QuerySet[_M] | type[_M], *, workspace: Workspace | int, pk: Any
) -> _M:
    """The row with this pk in this workspace; Http404 for a missing or another workspace's row."""
    qs = queryset._default_manager.all() if isinstance(queryset, type) else queryset
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    try:
        return qs.get(pk=pk, workspace_id=workspace_id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise Http404(_("Not found.")) from None


class MissingPermission(PermissionDenied):
    """A role without the right: the message names the permission that is missing."""

    def __init__(self, perm: str) -> None:
        super().__init__(_("Your role lacks the %(perm)s permission.") % {"perm": perm})
        self.perm = perm


@dataclass(frozen=True)
class Access:
    """The caller, the workspace they act in, and what their role there lets them do."""

    # A User or AnonymousUser; typed loosely because request.user's declared type lacks has_perm.
    user: Any
    workspace: Workspace | None
    role: str | None
    permissions: frozenset[str]

    @property
    def actor_label(self) -> str:
        return self.user.get_username() if self.user.is_authenticated else "anonymous"

    def has(self, perm: str) -> bool:
        if getattr(self.user, "is_superuser", False) and self.user.is_active:
            return True
        if perm in self.permissions:
            return True
        # Install-wide rights (operators) come from the user's own groups.
        return bool(self.user.is_active and self.user.has_perm(perm))

    def require(self, perm: str) -> None:
        if not self.has(perm):
            raise MissingPermission(perm)

    @property
    def workspace_required(self) -> Workspace:
        if self.workspace is None:
            raise PermissionDenied(_("Choose a workspace first."))
        return self.workspace


def access_for(user: AbstractBaseUser | AnonymousUser, workspace: Workspace | None) -> Access:
    """The user's access in a workspace: their membership's role, or none (superusers: all)."""
    if workspace is None or not user.is_authenticated:
        return Access(user=user, workspace=workspace, role=None, permissions=frozenset())
    role = (
        Membership.objects.filter(user_id=user.pk, workspace_id=workspace.pk)
        .values_list("role", flat=True)
        .first()
    )
    if role is None and not getattr(user, "is_superuser", False):
        # Not a member: the workspace does not exist as far as this user is concerned.
        raise Http404(_("Not found."))
    return Access(
        user=user,
        workspace=workspace,
        role=role,
        permissions=role_permissions(role) if role else frozenset(),
    )


def workspaces_of(user: AbstractBaseUser | AnonymousUser) -> models.QuerySet[Workspace]:
    """The workspaces a user may switch to: their memberships (superusers: every one)."""
    if not user.is_authenticated:
        return Workspace.objects.none()
    if getattr(user, "is_superuser", False):
        return Workspace.objects.all()
    return Workspace.objects.filter(memberships__user_id=user.pk)
