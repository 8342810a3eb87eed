"""The retention run (continuity/retention.py): periods per kind and workspace, the minimums, and
what happens when a run is cut short."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from contacts.consent import consent_erase, consent_grant, consent_revoke
from contacts.models import Channel, ConsentEvent, Purpose
from continuity import retention_rules as rules
from continuity.models import AuditEvent, RetentionPolicy, RetentionProgress, Workspace
from continuity.retention import (
    BatchDone,
    retention_kind,
    retention_overview,
    retention_period_set,
    retention_run,
)
from continuity.tasks import retention_run_task
from delivery.models import Delivery, DeliveryEvent, ProviderReceipt
from tests.campaigns.factories import make_message
from tests.contacts.factories import evidence, make_contact
from tests.workspaces import make_workspace

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _age(model: Any, pks: list[int], days: float, field: str = "created_at") -> None:
    model.objects.filter(pk__in=pks).update(**{field: timezone.now() - days * DAY})


def _deliveries(workspace: Workspace, n: int, *, status: str = "delivered") -> list[int]:
    message = make_message(workspace=workspace)
    ids = []
    for _ in range(n):
        contact = make_contact(workspace=workspace)
        d = Delivery.objects.create(
            workspace=workspace, message=message, contact=contact, channel="email", status=status
        )
        DeliveryEvent.objects.create(
            workspace=workspace, delivery=d, status=status, occurred_at=timezone.now()
        )
        ids.append(d.pk)
    return ids


def _left(ids: list[int]) -> set[int]:
    return set(Delivery.objects.filter(pk__in=ids).values_list("pk", flat=True))


# --- periods and minimums ---------------------------------------------------------------------


def test_deliveries_past_the_period_go_with_their_events_and_the_rest_stay() -> None:
    ws = make_workspace()
    old, recent = _deliveries(ws, 3), _deliveries(ws, 2)
    in_flight = _deliveries(ws, 1, status="queued") + _deliveries(ws, 1, status="sending")
    _age(Delivery, old + in_flight, 400)

    report = retention_run(kinds=[rules.DELIVERIES], batch=2)

    assert report.deleted == {rules.DELIVERIES: 3}
    assert _left(old + recent + in_flight) == set(recent + in_flight)
    assert not DeliveryEvent.objects.filter(delivery_id__in=old).exists()
    assert DeliveryEvent.objects.filter(delivery_id__in=recent).count() == 2


def test_each_workspace_keeps_its_own_period_and_another_workspaces_rows_are_untouched() -> None:
    short, default = make_workspace(), make_workspace()
    retention_period_set(workspace=short, kind_key=rules.DELIVERIES, days=40)
    short_old, default_old = _deliveries(short, 2), _deliveries(default, 2)
    _age(Delivery, short_old + default_old, 100)

    report = retention_run(kinds=[rules.DELIVERIES])

    assert report.deleted == {rules.DELIVERIES: 2}
    assert _left(short_old + default_old) == set(default_old)


def test_a_period_below_the_minimum_is_refused_with_the_reason() -> None:
    ws = make_workspace()
    with pytest.raises(ValidationError) as refused:
        retention_period_set(workspace=ws, kind_key=rules.CONSENT_EVIDENCE, days=365)
    assert refused.value.code == "below_minimum"
    assert "1826" in refused.value.messages[0]
    assert not RetentionPolicy.objects.filter(workspace=ws).exists()
    with pytest.raises(ValidationError):
        retention_period_set(workspace=ws, kind_key=rules.DELIVERIES, days=0)
    with pytest.raises(ValidationError):
        retention_period_set(workspace=ws, kind_key=rules.MONITOR_RECEIPTS, days=30)


def test_an_install_default_below_the_minimum_stops_the_start_with_the_setting_named() -> None:
    env = {**os.environ, "RETENTION_DELIVERIES_DAYS": "5"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "RETENTION_DELIVERIES_DAYS=5 is below its minimum of 31" in result.stderr


def test_a_stored_period_below_the_minimum_still_deletes_nothing_inside_it() -> None:
    ws = make_workspace()
    # Written around the validation, as a hand edit of the table would be.
    RetentionPolicy.objects.create(workspace=ws, kind=rules.DELIVERIES, days=1)
    inside, outside = _deliveries(ws, 2), _deliveries(ws, 1)
    _age(Delivery, inside, 30)
    _age(Delivery, outside, 32)

    retention_run(kinds=[rules.DELIVERIES])

    assert _left(inside + outside) == set(inside)


# --- consent evidence -------------------------------------------------------------------------


def _events(contact: Any) -> list[tuple[str, str]]:
    return list(
        ConsentEvent.objects.filter(contact=contact)
        .order_by("occurred_at", "id")
        .values_list("action", "channel")
    )


def test_standing_consent_keeps_its_evidence_however_old_it_is() -> None:
    contact = make_contact()
    consent_grant(
        contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    ConsentEvent.objects.filter(contact=contact).update(
        occurred_at=timezone.now() - 4000 * DAY, recorded_at=timezone.now() - 4000 * DAY
    )

    retention_run(kinds=[rules.CONSENT_EVIDENCE])

    assert _events(contact) == [("grant", "email")]


def test_replaced_evidence_goes_only_once_its_replacement_is_older_than_the_period() -> None:
    contact = make_contact()
    grant = consent_grant(
        contact=contact, channel=Channel.SMS, purpose=Purpose.MARKETING, evidence=evidence()
    )
    consent_revoke(
        contact=contact, channel=Channel.SMS, purpose=Purpose.MARKETING, evidence=evidence()
    )
    assert grant.pk
    first, second = ConsentEvent.objects.filter(contact=contact).order_by("id")
    period = rules.DEFAULT_DAYS[rules.CONSENT_EVIDENCE]

    # The withdrawal is inside the period: the grant it replaced is still kept.
    _stamp(first, period + 400)
    _stamp(second, period - 10)
    retention_run(kinds=[rules.CONSENT_EVIDENCE])
    assert _events(contact) == [("grant", "sms"), ("revoke", "sms")]

    # Past it: the grant goes, the withdrawal (the current state's proof) stays.
    _stamp(second, period + 1)
    RetentionProgress.objects.all().delete()
    retention_run(kinds=[rules.CONSENT_EVIDENCE])
    assert _events(contact) == [("revoke", "sms")]


def _stamp(event: ConsentEvent, days_ago: float) -> None:
    at = timezone.now() - days_ago * DAY
    ConsentEvent.objects.filter(pk=event.pk).update(occurred_at=at, recorded_at=at)


def test_an_erased_contacts_hashed_evidence_goes_after_the_period_but_the_erasure_stays() -> None:
    contact = make_contact()
    consent_grant(
        contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    consent_erase(contact=contact)
    type(contact).objects.filter(pk=contact.pk).update(
        erased_at=timezone.now() - 3000 * DAY, email=None
    )
    for event in ConsentEvent.objects.filter(contact=contact):
        _stamp(event, 3000)

    retention_run(kinds=[rules.CONSENT_EVIDENCE])

    assert _events(contact) == [("erase", "")]


# --- the audit trail ------------------------------------------------------------------------------


def test_old_audit_events_expire_and_the_database_refuses_a_young_one_whatever_the_code() -> None:
    ws = make_workspace()
    now = timezone.now()
    old = AuditEvent.objects.create(
        workspace=ws, actor_label="t", action="contact.export", at=now - 2300 * DAY
    )
    young = AuditEvent.objects.create(
        workspace=ws, actor_label="t", action="contact.export", at=now - 1800 * DAY
    )
    assert old.pk

    assert retention_run(kinds=[rules.AUDIT_EVENTS]).deleted == {rules.AUDIT_EVENTS: 1}
    assert list(AuditEvent.objects.filter(workspace=ws).values_list("pk", flat=True)) == [young.pk]

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT set_config('continuity.retention', 'on', true)")
        cursor.execute("DELETE FROM continuity_auditevent WHERE id = %s", [young.pk])


def test_the_triggers_minimum_is_the_audit_kinds_minimum() -> None:
    from importlib import import_module

    migration = import_module("continuity.migrations.0003_privacyretention_retention")
    assert f"interval '{rules.AUDIT_TRIGGER_MINIMUM_DAYS} days'" in migration.AUDIT_RETENTION


# --- receipts, the admin's counts, the task ---------------------------------------------------


@override_settings(RETENTION_DAYS={**settings.RETENTION_DAYS, rules.PROVIDER_RECEIPTS: 10})
def test_provider_receipts_of_a_workspace_and_the_installs_follow_their_periods() -> None:
    ws = make_workspace()
    retention_period_set(workspace=ws, kind_key=rules.PROVIDER_RECEIPTS, days=60)
    own = ProviderReceipt.objects.create(workspace=ws, provider="sendgrid", kind="events")
    install = ProviderReceipt.objects.create(provider="twilio", kind="inbound")
    _age(ProviderReceipt, [own.pk, install.pk], 20)

    retention_run(kinds=[rules.PROVIDER_RECEIPTS])

    assert list(ProviderReceipt.objects.values_list("pk", flat=True)) == [own.pk]


def test_the_overview_counts_what_is_due_for_this_workspace_only() -> None:
    mine, theirs = make_workspace(), make_workspace()
    _age(Delivery, _deliveries(mine, 2) + _deliveries(theirs, 3), 400)
    _deliveries(mine, 1)

    rows = {row.period.kind.key: row for row in retention_overview(workspace=mine)}

    assert rows[rules.DELIVERIES].due == 2
    assert rows[rules.DELIVERIES].period.days == rules.DEFAULT_DAYS[rules.DELIVERIES]
    assert rows[rules.CONSENT_EVIDENCE].period.kind.minimum_days == 1826
    assert set(rows) == set(rules.MINIMUM_DAYS)


def test_the_beat_task_runs_every_kind() -> None:
    ws = make_workspace()
    _age(Delivery, _deliveries(ws, 1), 400)
    assert retention_run_task() == {rules.DELIVERIES: 1}


# --- interruptions --------------------------------------------------------------------------------


def _kill(pid: int) -> None:
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def _dsn() -> str:
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
    )


def _pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_between_batches_resumes_and_deletes_each_row_once() -> None:
    ws = make_workspace()
    old, recent = _deliveries(ws, 7), _deliveries(ws, 2)
    _age(Delivery, old, 400)
    pid = _pid()
    seen: list[BatchDone] = []

    def kill_after_the_second(done: BatchDone) -> None:
        seen.append(done)
        if len(seen) == 2:
            _kill(pid)

    first = retention_run(kinds=[rules.DELIVERIES], batch=2, on_batch=kill_after_the_second)

    assert first.interrupted
    assert first.deleted == {rules.DELIVERIES: 4}
    assert len(_left(old)) == 3
    progress = RetentionProgress.objects.get(kind=rules.DELIVERIES)
    assert progress.deleted_total == 4
    assert progress.after_id == sorted(old)[3]

    second = retention_run(kinds=[rules.DELIVERIES], batch=2)

    assert not second.interrupted
    assert second.deleted == {rules.DELIVERIES: 3}
    assert _left(old + recent) == set(recent)
    assert RetentionProgress.objects.get(kind=rules.DELIVERIES).deleted_total == 7


@pytest.mark.django_db(transaction=True)
def test_the_database_going_away_inside_a_batch_rolls_it_back_and_the_next_run_ends_it() -> None:
    ws = make_workspace()
    old = _deliveries(ws, 4)
    _age(Delivery, old, 400)
    pid = _pid()
    # Another session holds one of the events, so the batch deleting its delivery waits inside
    # its transaction; the database connection is then cut while it waits.
    holder = psycopg.connect(_dsn())
    holder.execute(
        "SELECT id FROM delivery_deliveryevent WHERE delivery_id = %s FOR UPDATE", [old[0]]
    )
    killer = threading.Thread(target=_kill_when_waiting, args=(pid,))
    killer.start()
    try:
        with override_settings(RETENTION_LOCK_TIMEOUT_MS=30_000):
            report = retention_run(kinds=[rules.DELIVERIES], batch=10)
    finally:
        killer.join()
        holder.rollback()
        holder.close()

    assert report.interrupted
    assert report.deleted == {}
    assert _left(old) == set(old)
    assert DeliveryEvent.objects.filter(delivery_id__in=old).count() == 4

    again = retention_run(kinds=[rules.DELIVERIES], batch=10)
    assert again.deleted == {rules.DELIVERIES: 4}
    assert not _left(old)


def _kill_when_waiting(pid: int) -> None:
    with psycopg.connect(_dsn(), autocommit=True) as watcher:
        for _ in range(200):
            row = watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
            if row is not None and row[0] == "Lock":
                watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
                return
            time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_a_lock_held_too_long_stops_the_run_without_deleting_that_batch() -> None:
    ws = make_workspace()
    old = _deliveries(ws, 2)
    _age(Delivery, old, 400)
    holder = psycopg.connect(_dsn())
    holder.execute(
        "SELECT id FROM delivery_deliveryevent WHERE delivery_id = %s FOR UPDATE", [old[0]]
    )
    try:
        with override_settings(RETENTION_LOCK_TIMEOUT_MS=200):
            report = retention_run(kinds=[rules.DELIVERIES])
    finally:
        holder.rollback()
        holder.close()
    assert "lock" in report.interrupted.lower()
    assert _left(old) == set(old)
    assert retention_run(kinds=[rules.DELIVERIES]).deleted == {rules.DELIVERIES: 2}


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_one_is_going_does_nothing() -> None:
    ws = make_workspace()
    _age(Delivery, _deliveries(ws, 1), 400)
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [0x5E7E_0019])
        report = retention_run(kinds=[rules.DELIVERIES])
        other.execute("SELECT pg_advisory_unlock(%s)", [0x5E7E_0019])
    assert report.skipped
    assert report.deleted == {}


def test_every_kind_names_a_table_that_exists_and_a_minimum() -> None:
    from continuity.retention import retention_kinds

    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    kinds = retention_kinds()
    assert {k.key for k in kinds} == set(rules.MINIMUM_DAYS)
    for kind in kinds:
        assert kind.table in tables
        assert rules.DEFAULT_DAYS[kind.key] >= kind.minimum_days
    assert retention_kind(rules.AUDIT_EVENTS).minimum_days == rules.AUDIT_TRIGGER_MINIMUM_DAYS
