"""API keys: issued to one user for one workspace (or, for operators, for install-wide endpoints),
stored hashed by djangorestframework-api-key; the key itself is seen once, when it is issued."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from continuity.audit import audit_record
from continuity.errors import NotAMember
from continuity.models import ApiKey, Membership, Workspace
from continuity.roles import user_is_operator
from continuity.tenancy import Access
from continuity.workspaces import COMMAND_ACTOR


def api_key_may_hold(*, user: Any, workspace: Workspace | None) -> bool:
    """A key acts as its user: in a workspace they belong to (superusers: any), or install-wide
    for operators."""
    if not user.is_active:
        return False
    if workspace is None:
        return user_is_operator(user)
    if user.is_superuser:
        return True
    return Membership.objects.filter(user_id=user.pk, workspace_id=workspace.pk).exists()


def api_key_issue(
    *,
    access: Access,
    user: Any,
    workspace: Workspace | None,
    name: str,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the key, which is never retrievable again.
    NotAMember when the user may not act there."""
    if not api_key_may_hold(user=user, workspace=workspace):
        if not user.is_active:
            raise NotAMember(_("The user is inactive."))
        if workspace is None:
            raise NotAMember(_("Only operators hold install-wide API keys."))
        raise NotAMember(_("The user is not a member of this workspace."))
    with transaction.atomic():
        created, key = ApiKey.objects.create_key(
            name=name[:50], user=user, workspace=workspace, expiry_date=expires_at
        )
        row = cast(ApiKey, created)  # the library's manager is typed for its abstract base
        audit_record(
            # An install-wide key's row belongs to no workspace, whatever the caller's current one.
            access=replace(access, workspace=workspace),
            action="api_key.create",
            target=row,
            workspace=workspace,
            detail={
                "user_id": user.pk,
                "username": user.get_username(),
                "name": row.name,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
            actor_label=None if access.user.is_authenticated else COMMAND_ACTOR,
        )
    return row, key


def api_key_revoke(*, access: Access, api_key: ApiKey) -> bool:
    """Revoke a key for good; False when it was revoked already."""
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, revoked=False).update(revoked=True)
        if not updated:
            return False
        audit_record(
            access=replace(access, workspace=api_key.workspace),
            action="api_key.revoke",
            target=api_key,
            workspace=api_key.workspace,
            detail={"user_id": api_key.user_id, "name": api_key.name},
            actor_label=None if access.user.is_authenticated else COMMAND_ACTOR,
        )
    api_key.revoked = True
    return True


def api_key_expiry(*, days: int | None) -> datetime | None:
    return timezone.now() + timedelta(days=days) if days else None
