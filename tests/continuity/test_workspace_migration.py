"""Rows written before workspaces existed move into the default workspace when the migrations run,
and keep what made them unique."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [
    ("continuity", "0001_initial"),
    ("contacts", "0002_alter_consentevent_action"),
    ("campaigns", "0002_attempts_accounts_retry"),
    ("delivery", "0002_provider_receipt"),
]


@pytest.fixture
def executor(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    yield executor
    # Whatever the test did, the database ends at the latest state for the tests after it.
    executor = MigrationExecutor(connection)
    executor.migrate(latest)


def _migrate(executor: MigrationExecutor, targets: list[tuple[str, str]]) -> Any:
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def test_rows_from_before_workspaces_land_in_the_default_workspace(
    executor: MigrationExecutor,
) -> None:
    old = _migrate(executor, BEFORE)
    now = timezone.now()
    contact = old.get_model("contacts", "Contact").objects.create(
        external_id="E1", email="ada@example.com", first_name="Ada"
    )
    old.get_model("contacts", "Consent").objects.create(
        contact=contact, channel="email", purpose="marketing", state="granted", updated_at=now
    )
    tag = old.get_model("contacts", "Tag").objects.create(name="vip")
    old.get_model("contacts", "ContactTag").objects.create(contact=contact, tag=tag)
    segment = old.get_model("contacts", "Segment").objects.create(name="VIPs", tags_any=["vip"])
    message = old.get_model("delivery", "Message").objects.create(name="Fallback")
    old.get_model("campaigns", "Campaign").objects.create(
        name="Winter sale", segment=segment, message=message
    )
    old.get_model("delivery", "Delivery").objects.create(
        message=message, contact=contact, channel="email"
    )

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    new = _migrate(executor, latest)

    default = new.get_model("continuity", "Workspace").objects.get(slug="default")
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
        rows = new.get_model(app, model).objects.values_list("workspace_id", flat=True)
        assert list(rows) == [default.pk], model
    # The identifiers stay unique, now per workspace: the same email again in the default
    # workspace is refused, in another it is a different client's customer.
    from django.db import IntegrityError, transaction

    Contact = new.get_model("contacts", "Contact")
    other = new.get_model("continuity", "Workspace").objects.create(slug="other", name="Other")
    Contact.objects.create(workspace=other, email="ada@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(workspace=default, email="ada@example.com")
