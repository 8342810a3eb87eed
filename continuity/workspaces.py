"""Workspaces, memberships and operators: who belongs where, with which role.

Each change is one transaction that writes its audit row. Edges (admin, management commands)
authorise first; these functions trust their caller's decision and record who made it. A change
of a workspace's members locks the workspace row, so two owners demoting each other at once
cannot leave it without an owner.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.db import IntegrityError, transaction
from django.db.models import Field
from django.utils.translation import gettext as _

from continuity.audit import audit_record
from continuity.errors import LastOwner, WorkspaceSlugTaken
from continuity.models import ApiKey, Membership, Role, Workspace
from continuity.roles import OPERATOR_GROUP
from continuity.tenancy import Access

# The audit trail's actor for changes made on the command line (no user is signed in there).
COMMAND_ACTOR = "manage.py"


def command_access(*, workspace: Workspace | None = None) -> Access:
    """The access a management command acts with: no user, recorded as COMMAND_ACTOR."""
    return Access(user=AnonymousUser(), workspace=workspace, role=None, permissions=frozenset())


def _actor_label(access: Access) -> str | None:
    return None if access.user.is_authenticated else COMMAND_ACTOR


def workspace_create(*, access: Access, slug: str, name: str) -> Workspace:
    """A new, empty workspace; WorkspaceSlugTaken when the slug is in use."""
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(slug=slug, name=name)
            audit_record(
                access=access,
                action="workspace.create",
                target=workspace,
                workspace=workspace,
                detail={"slug": slug, "name": name},
                actor_label=_actor_label(access),
            )
    except IntegrityError:
        raise WorkspaceSlugTaken(
            _("A workspace with the slug %(slug)s exists already.") % {"slug": slug}
        ) from None
    return workspace


def username_clean(*, username: str) -> str:
    """The username, checked by the user model's own field (ValidationError when refused)."""
    user_model = get_user_model()
    field = cast("Field[Any, Any]", user_model._meta.get_field(user_model.USERNAME_FIELD))
    return str(field.clean(username.strip(), None))


def user_ensure(*, username: str) -> tuple[Any, bool]:
    """The user with this username, created staff with an unusable password when missing (an
    operator sets a password with `manage.py changepassword`, or the user resets it)."""
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is not None:
        return user, False
    user = user_model(**{user_model.USERNAME_FIELD: username}, is_staff=True)
    user.set_unusable_password()
    user.save()
    return user, True


def _owners_left(workspace: Workspace, *, without: Membership) -> bool:
    return (
        Membership.objects.filter(workspace=workspace, role=Role.OWNER)
        .exclude(pk=without.pk)
        .exists()
    )


def membership_set(
    *, access: Access, workspace: Workspace, user: Any, role: str
) -> tuple[Membership, str]:
    """Add ``user`` to ``workspace`` with ``role``, or change their role there. Returns the
    membership and "added", "changed" or "unchanged". LastOwner when it would leave the
    workspace without an owner."""
    role = Role(role).value
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        membership = (
            Membership.objects.select_for_update().filter(user=user, workspace=workspace).first()
        )
        if membership is None:
            membership = Membership.objects.create(user=user, workspace=workspace, role=role)
            outcome, previous = "added", None
        elif membership.role == role:
            return membership, "unchanged"
        else:
            previous = membership.role
            if previous == Role.OWNER and not _owners_left(workspace, without=membership):
                raise LastOwner(_("A workspace keeps at least one owner."))
            membership.role = role
            membership.save(update_fields=["role"])
            outcome = "changed"
        audit_record(
            access=access,
            action="membership.add" if outcome == "added" else "membership.change",
            target=membership,
            workspace=workspace,
            detail={
                "user_id": user.pk,
                "username": user.get_username(),
                "role": role,
                **({"previous_role": previous} if previous else {}),
            },
            actor_label=_actor_label(access),
        )
    return membership, outcome


def membership_remove(*, access: Access, membership: Membership) -> None:
    """Remove a member: their API keys for this workspace are revoked with it. LastOwner for the
    workspace's only owner."""
    workspace = membership.workspace
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        locked = Membership.objects.select_for_update().filter(pk=membership.pk).first()
        if locked is None:
            return
        if locked.role == Role.OWNER and not _owners_left(workspace, without=locked):
            raise LastOwner(_("A workspace keeps at least one owner."))
        revoked = ApiKey.objects.filter(
            user_id=locked.user_id, workspace=workspace, revoked=False
        ).update(revoked=True)
        audit_record(
            access=access,
            action="membership.remove",
            target=locked,
            workspace=workspace,
            detail={
                "user_id": locked.user_id,
                "username": locked.user.get_username(),
                "role": locked.role,
                "api_keys_revoked": revoked,
            },
            actor_label=_actor_label(access),
        )
        locked.delete()


def operator_add(*, access: Access, user: Any) -> bool:
    """Make ``user`` an install-wide operator (the Operator group, staff). False if they were."""
    with transaction.atomic():
        group, _created = Group.objects.get_or_create(name=OPERATOR_GROUP)
        already = user.groups.filter(pk=group.pk).exists() and user.is_staff
        if already:
            return False
        user.groups.add(group)
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        audit_record(
            access=replace(access, workspace=None),
            action="operator.add",
            target=user,
            workspace=None,
            detail={"user_id": user.pk, "username": user.get_username()},
            actor_label=_actor_label(access),
        )
    return True
