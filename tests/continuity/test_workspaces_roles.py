"""Roles as groups, declared in continuity/roles.py, and the append-only audit table."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import DatabaseError, connection, transaction

from continuity.audit import audit_record
from continuity.models import AuditEvent, Role
from continuity.roles import (
    OPERATOR_GROUP,
    OPERATOR_PERMISSIONS,
    ROLE_PERMISSIONS,
    role_group_name,
    role_permissions,
    roles_sync,
)
from continuity.workspaces import command_access
from tests.workspaces import make_workspace

pytestmark = pytest.mark.django_db


def _group_perms(name: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def _existing(perms: frozenset[str]) -> set[str]:
    found = set()
    for perm in perms:
        app_label, codename = perm.split(".", 1)
        if Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists():
            found.add(perm)
    return found


def test_every_declared_permission_exists_so_a_typo_fails() -> None:
    declared = frozenset().union(*ROLE_PERMISSIONS.values(), OPERATOR_PERMISSIONS)
    assert declared - _existing(declared) == set()


def test_after_migrate_each_role_group_holds_exactly_its_declared_permissions() -> None:
    for role in Role:
        assert _group_perms(role_group_name(role)) == set(ROLE_PERMISSIONS[role]), role
        assert role_permissions(role) == ROLE_PERMISSIONS[role]
    assert _group_perms(OPERATOR_GROUP) == set(OPERATOR_PERMISSIONS)


def test_the_sync_takes_back_a_permission_granted_by_hand() -> None:
    viewer = Group.objects.get(name=role_group_name(Role.VIEWER))
    viewer.permissions.add(Permission.objects.get(codename="erase_contact"))
    roles_sync()
    assert "contacts.erase_contact" not in _group_perms(role_group_name(Role.VIEWER))
    assert "contacts.erase_contact" not in role_permissions(Role.VIEWER)


def test_the_roles_read_as_the_issue_says() -> None:
    marketer, privacy = ROLE_PERMISSIONS[Role.MARKETER], ROLE_PERMISSIONS[Role.PRIVACY]
    assert "campaigns.run_drill" in marketer
    assert not {"contacts.export_contact", "contacts.erase_contact"} & marketer
    assert {"contacts.export_contact", "contacts.erase_contact"} <= privacy
    assert not any(
        p.split(".")[1].startswith(("add_", "change_", "delete_"))
        for p in ROLE_PERMISSIONS[Role.VIEWER]
    )
    assert "continuity.manage_members" in ROLE_PERMISSIONS[Role.OWNER]
    assert "continuity.view_auditevent" in ROLE_PERMISSIONS[Role.OWNER] & privacy


def test_the_audit_table_refuses_update_and_delete_in_the_database() -> None:
    event = audit_record(
        access=command_access(workspace=make_workspace()), action="test.thing", detail={"a": 1}
    )
    for statement in (
        "UPDATE continuity_auditevent SET action = 'forged' WHERE id = %s",
        "DELETE FROM continuity_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [event.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"
