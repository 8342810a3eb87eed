"""Manual outage actions by a person (API or admin): the window change and its audit row commit
together. Outages are install-wide, so the audit row belongs to no workspace."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from continuity.audit import audit_record
from continuity.tenancy import Access
from outages.models import OutageWindow
from outages.windows import outage_declare, outage_resolve


def install_access(*, user: Any) -> Access:
    """The access of an install-wide action: the user's own permissions (operators), no
    workspace, so the audit row is install-level too."""
    return Access(user=user, workspace=None, role=None, permissions=frozenset())


def outage_declare_manually(*, access: Access, network: str, reason: str) -> OutageWindow:
    """An operator declares ``network`` down (joins its open window if there is one)."""
    with transaction.atomic():
        window = outage_declare(network=network, reason=reason, actor=access.actor_label)
        audit_record(
            access=access,
            action="outage.declare",
            target=window,
            workspace=None,
            detail={"network": network, "reason": reason[:500]},
        )
    return window


def outage_resolve_manually(*, access: Access, window: OutageWindow, reason: str) -> OutageWindow:
    """An operator resolves ``window``; WindowNotOpen (nothing written) when it was closed."""
    with transaction.atomic():
        window = outage_resolve(window=window, reason=reason, actor=access.actor_label)
        audit_record(
            access=access,
            action="outage.resolve",
            target=window,
            workspace=None,
            detail={"network": window.network, "reason": reason[:500]},
        )
    return window
