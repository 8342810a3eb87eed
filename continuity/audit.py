"""The audit trail: one append-only row per sensitive action, in the same transaction as it."""

from __future__ import annotations

from typing import Any

from django.db import models

from continuity.models import ApiKey, AuditEvent, AuditOutcome, Workspace
from continuity.tenancy import Access


def audit_record(
    *,
    access: Access,
    action: str,
    target: models.Model | None = None,
    workspace: Workspace | None = None,
    outcome: str = AuditOutcome.DONE,
    detail: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Record that ``access.user`` did (or was refused) ``action``; call inside the change's
    transaction so the row and the change commit together. ``actor_label`` names an actor that
    is not a user (a management command: "manage.py")."""
    user: Any = access.user if access.user.is_authenticated else None
    return AuditEvent.objects.create(
        workspace=workspace if workspace is not None else access.workspace,
        actor=user,
        actor_label=actor_label or access.actor_label,
        action=action,
        outcome=outcome,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=_target_id(target) if target is not None else "",
        detail=detail or {},
    )


def _target_id(target: models.Model) -> str:
    # An API key's primary key embeds its hash: the audit trail names it by its public prefix.
    if isinstance(target, ApiKey):
        return target.prefix
    return str(target.pk)


def audit_denied(
    *, access: Access, action: str, target: models.Model | None = None, perm: str = ""
) -> AuditEvent:
    """Record a refusal (export, erase, credential or role change) on its own: the refused
    request changes nothing else, so this row commits alone."""
    return audit_record(
        access=access,
        action=action,
        target=target,
        outcome=AuditOutcome.DENIED,
        detail={"missing": perm} if perm else {},
    )
