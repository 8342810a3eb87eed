"""Who may do what: each workspace role and the install-wide operator, as Django permissions.

The declaration here is the source of truth, reviewed like code: after every migrate a Group per
role is brought to exactly these permissions (``roles_sync``), so the admin shows them and a
permission a new model adds is granted only where a line here says so. A membership's role names
its group; ``role_permissions`` reads the group. Operators are an ordinary install-wide group on
the user, checked with ``user.has_perm`` by Django's ModelBackend.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth.models import Group, Permission
from django.db.models import Q
from django.utils import translation

from continuity.models import Role

# Model permissions a workspace role may hold, by app: what exists per model.
_VIEW_ALL = frozenset(
    {
        "contacts.view_contact",
        "contacts.view_tag",
        "contacts.view_contacttag",
        "contacts.view_consent",
        "contacts.view_segment",
        "contacts.view_pushsubscription",
        "campaigns.view_campaign",
        "campaigns.view_socialaccount",
        "campaigns.view_socialpost",
        "campaigns.view_reroute",
        "campaigns.view_publishattempt",
        "delivery.view_message",
        "delivery.view_delivery",
        "delivery.view_deliveryevent",
        "continuity.view_workspace",
        "continuity.view_membership",
    }
)

_MARKETING = frozenset(
    {
        "contacts.add_contact",
        "contacts.change_contact",
        "contacts.import_contact",
        # Their imports' records and error reports (contacts/admin_imports.py).
        "contacts.view_importrun",
        "contacts.record_consent",
        "contacts.add_tag",
        "contacts.change_tag",
        "contacts.delete_tag",
        "contacts.add_contacttag",
        "contacts.delete_contacttag",
        "contacts.add_segment",
        "contacts.change_segment",
        "contacts.delete_segment",
        "campaigns.add_campaign",
        "campaigns.change_campaign",
        "campaigns.delete_campaign",
        "campaigns.add_socialpost",
        "campaigns.change_socialpost",
        "campaigns.run_drill",
        "delivery.add_message",
        "delivery.change_message",
        "delivery.delete_message",
        # The delivery admin's "retry failed" (every field of a delivery is read-only there).
        "delivery.change_delivery",
    }
)

_PRIVACY = frozenset(
    {
        "contacts.export_contact",
        "contacts.erase_contact",
        "contacts.delete_contact",
        "contacts.record_consent",
        "contacts.view_consentevent",
        "contacts.view_suppression",
        # Import error reports hold personal data erasure and access requests reach.
        "contacts.view_importrun",
        "contacts.add_suppression",
        "contacts.change_suppression",
        "continuity.view_auditevent",
        # Retention periods and the records of processing (continuity/admin_privacy.py).
        "continuity.view_retentionpolicy",
        "continuity.change_retentionpolicy",
        "continuity.view_processing_records",
    }
)

_OWNING = frozenset(
    {
        "continuity.change_workspace",
        "continuity.manage_members",
        "continuity.manage_credentials",
        "continuity.add_membership",
        "continuity.change_membership",
        "continuity.delete_membership",
        "continuity.view_auditevent",
        "campaigns.add_socialaccount",
        "campaigns.change_socialaccount",
        "campaigns.delete_socialaccount",
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: _VIEW_ALL,
    Role.MARKETER: _VIEW_ALL | _MARKETING,
    Role.PRIVACY: _VIEW_ALL | _PRIVACY,
    Role.OWNER: _VIEW_ALL | _MARKETING | _PRIVACY | _OWNING,
}

OPERATOR_GROUP = "Operator"
# Install-wide: monitor sources, signals, windows, manual declare/resolve, drills across
# workspaces; counts per workspace, never contacts.
OPERATOR_PERMISSIONS: frozenset[str] = frozenset(
    {
        "outages.view_monitorsource",
        "outages.add_monitorsource",
        "outages.change_monitorsource",
        "outages.view_monitorcredential",
        "outages.add_monitorcredential",
        "outages.change_monitorcredential",
        "outages.delete_monitorcredential",
        "outages.view_webhookreceipt",
        "outages.view_outagewindow",
        "outages.add_outagewindow",
        "outages.change_outagewindow",
        "outages.view_outagesignal",
        "outages.view_windowevent",
        "delivery.view_providerreceipt",
        "continuity.view_workspace",
        "continuity.view_heartbeat",
    }
)


def role_group_name(role: str) -> str:
    # The group's stored name is the English label whatever language the request speaks: under
    # an Italian request the label reads "Proprietario", and a lookup by that name would find no
    # group, so no permission (#17).
    with translation.override(None):
        return f"Workspace {Role(role).label}"


def _permission_filter(perms: frozenset[str]) -> Q:
    query = Q(pk__in=[])
    for perm in perms:
        app_label, codename = perm.split(".", 1)
        query |= Q(content_type__app_label=app_label, codename=codename)
    return query


def roles_sync() -> None:
    """Bring each role's group (and the operator group) to exactly the declared permissions."""
    declared = {role_group_name(role): perms for role, perms in ROLE_PERMISSIONS.items()}
    declared[OPERATOR_GROUP] = OPERATOR_PERMISSIONS
    for name, perms in declared.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(Permission.objects.filter(_permission_filter(perms)))
    role_permissions.cache_clear()


@lru_cache(maxsize=8)
def role_permissions(role: str) -> frozenset[str]:
    """The permissions of a role's group, as "app_label.codename" strings."""
    rows = Permission.objects.filter(group__name=role_group_name(role)).values_list(
        "content_type__app_label", "codename"
    )
    return frozenset(f"{app_label}.{codename}" for app_label, codename in rows)


def user_is_operator(user: object) -> bool:
    """An install-wide operator: an active superuser or a member of the Operator group."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user.groups.filter(name=OPERATOR_GROUP).exists())  # type: ignore[attr-defined]
