"""Rows written before workspaces existed move into the default workspace when the migrations run,
and keep what made them unique.

The round trip runs in a schema of its own, migrated up from empty to the last migrations before
workspaces and then to the latest: what an install from before workspaces goes through. The
tables the other tests share are never migrated backwards (unapplying every later migration there
and re-applying it afterwards was the slowest part of the suite), and nothing is left for the
tests after this one to repair.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

BEFORE = [
    ("continuity", "0001_initial"),
    ("contacts", "0002_alter_consentevent_action"),
    ("campaigns", "0002_attempts_accounts_retry"),
    ("delivery", "0002_provider_receipt"),
]
ALIAS = "before_workspaces"


class _OldInstallRouter:
    """Every read and write goes to the old install: the landed data migrations (continuity 0002's
    default workspace) save through their models' managers, which follow the router, not through
    the connection the migration runs on."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return ALIAS

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return ALIAS


@pytest.fixture
def old_install(db: None) -> Iterator[BaseDatabaseWrapper]:
    """An empty schema of this test's own in the test database, reachable as the ALIAS
    connection, whose search path holds that schema alone: the migrations see no table and
    create every one there. (A schema, not a database: CREATE and DROP DATABASE wait for a
    checkpoint, seconds on a busy machine.)"""
    settings_dict = {**connection.settings_dict}
    settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], "options": f"-c search_path={ALIAS}"}
    connections.settings[ALIAS] = settings_dict
    old = connections[ALIAS]
    try:
        # Opened here, not on first use: Django's test case lets a test open connections only
        # to the databases it declares, and this one is not in DATABASES (the test run would
        # otherwise make a test copy of it and wrap it in a transaction).
        old.connect()
        with old.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {ALIAS} CASCADE")
            cursor.execute(f"CREATE SCHEMA {ALIAS}")
        with override_settings(DATABASE_ROUTERS=[_OldInstallRouter()]):
            yield old
    finally:
        with old.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {ALIAS} CASCADE")
        old.close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def _migrate(conn: BaseDatabaseWrapper, targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(conn)
    state = executor.migrate(targets)
    return state.apps


def test_rows_from_before_workspaces_land_in_the_default_workspace(
    old_install: BaseDatabaseWrapper,
) -> None:
    old = _migrate(old_install, BEFORE)
    assert "workspace" not in {f.name for f in old.get_model("contacts", "Contact")._meta.fields}

    def objects(apps: Any, app: str, model: str) -> Any:
        return apps.get_model(app, model).objects.using(ALIAS)

    now = timezone.now()
    contact = objects(old, "contacts", "Contact").create(
        external_id="E1", email="ada@example.com", first_name="Ada"
    )
    objects(old, "contacts", "Consent").create(
        contact=contact, channel="email", purpose="marketing", state="granted", updated_at=now
    )
    tag = objects(old, "contacts", "Tag").create(name="vip")
    objects(old, "contacts", "ContactTag").create(contact=contact, tag=tag)
    segment = objects(old, "contacts", "Segment").create(name="VIPs", tags_any=["vip"])
    message = objects(old, "delivery", "Message").create(name="Fallback")
    objects(old, "campaigns", "Campaign").create(
        name="Winter sale", segment=segment, message=message
    )
    objects(old, "delivery", "Delivery").create(message=message, contact=contact, channel="email")

    # The latest migrations of the apps that hold those rows, and whatever they depend on.
    apps = {app for app, _ in BEFORE}
    latest = [n for n in MigrationExecutor(old_install).loader.graph.leaf_nodes() if n[0] in apps]
    new = _migrate(old_install, latest)

    default = objects(new, "continuity", "Workspace").get(slug="default")
    for app, model in [
        ("contacts", "Contact"),
        ("contacts", "Consent"),
        ("contacts", "Tag"),
        ("contacts", "ContactTag"),
        ("contacts", "Segment"),
        ("delivery", "Message"),
        ("campaigns", "Campaign"),
        ("delivery", "Delivery"),
    ]:
        rows = objects(new, app, model).values_list("workspace_id", flat=True)
        assert list(rows) == [default.pk], model
    # The identifiers stay unique, now per workspace: the same email again in the default
    # workspace is refused, in another it is a different client's customer.
    other = objects(new, "continuity", "Workspace").create(slug="other", name="Other")
    objects(new, "contacts", "Contact").create(workspace=other, email="ada@example.com")
    with pytest.raises(IntegrityError), transaction.atomic(using=ALIAS):
        objects(new, "contacts", "Contact").create(workspace=default, email="ada@example.com")
