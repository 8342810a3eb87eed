"""The one way a Delivery changes status: a guarded bulk UPDATE plus its timeline rows.

The guard (`status IN allowed sources`) sits in the UPDATE itself, so a late or repeated provider
event, or a task racing a webhook, can only ever move a row forward. Rows the guard refuses are
simply not returned: callers see which ids moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from continuity.sql import sql_any_of
from delivery.models import Delivery, DeliveryEvent
from delivery.states import ALLOWED_FROM, RETRY_FROM, TIMESTAMP_FIELD, DeliveryStatus


class IllegalTransition(ValueError):
    """A status with no legal way in (a programming error, not a race)."""


def _guarded_update(
    *,
    ids: list[int],
    sources: Iterable[str],
    values: Mapping[str, Any],
    claim_id: int | None = None,
) -> list[int]:
    """UPDATE ... WHERE id IN ids AND status IN sources [AND claim_id = claim] RETURNING id."""
    if not ids:
        return []
    table = Delivery._meta.db_table
    assignments = ", ".join(f"{connection.ops.quote_name(column)} = %s" for column in values)
    id_match, id_params = sql_any_of("id", ids)
    sources = list(sources)
    source_marks = ", ".join(["%s"] * len(sources))
    claim_match, claim_params = ("", []) if claim_id is None else (" AND claim_id = %s", [claim_id])
    sql = (
        f"UPDATE {connection.ops.quote_name(table)} SET {assignments} "
        f"WHERE {id_match} AND status IN ({source_marks}){claim_match} RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values.values(), *id_params, *sources, *claim_params])
        return [row[0] for row in cursor.fetchall()]


def deliveries_transition(
    *,
    ids: Iterable[int],
    target: str,
    detail: str = "",
    fields: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    sources: Iterable[str] | None = None,
    claim_id: int | None = None,
) -> list[int]:
    """Move the given deliveries to `target` where the state machine allows; return those moved.

    `fields` sets more columns in the same statement (error code, provider id...). `sources`
    narrows the allowed starting statuses (never widens them). `claim_id` moves only rows still
    held by that chunk: a chunk the sweeper gave up on cannot overwrite what happened since.
    """
    if target not in ALLOWED_FROM:
        raise IllegalTransition(f"no status may move to {target!r}")
    allowed = ALLOWED_FROM[target]
    if sources is not None:
        allowed = allowed & frozenset(sources)
    now = at or timezone.now()
    values: dict[str, Any] = {"status": target, "updated_at": now, **(fields or {})}
    stamp = TIMESTAMP_FIELD.get(target)
    if stamp:
        values[stamp] = now
    with transaction.atomic():
        moved = _guarded_update(ids=list(ids), sources=allowed, values=values, claim_id=claim_id)
        _events_append(ids=moved, status=target, at=now, detail=detail)
    return moved


def deliveries_retry_later(
    *,
    ids: Iterable[int],
    not_before: datetime,
    error_code: str,
    error_text: str,
    claim_id: int | None = None,
) -> list[int]:
    """Put claimed rows the provider did not accept back in the queue, not before a time."""
    now = timezone.now()
    values = {
        "status": DeliveryStatus.QUEUED,
        "updated_at": now,
        "queued_at": now,
        "not_before": not_before,
        "error_code": error_code[:50],
        "error_text": error_text[:500],
    }
    with transaction.atomic():
        moved = _guarded_update(ids=list(ids), sources=RETRY_FROM, values=values, claim_id=claim_id)
        _events_append(
            ids=moved, status=DeliveryStatus.QUEUED, at=now, detail=f"retry: {error_code}"
        )
    return moved


def deliveries_mark_sent(
    *,
    provider_ids: Mapping[int, str],
    provider: str,
    cost_units: Mapping[int, int],
    claim_id: int | None = None,
) -> list[int]:
    """sending -> sent for many rows at once, each with its own provider message id and cost.

    With `claim_id`, a row of that chunk that the sweeper already called `unknown` (it judged the
    worker lost) is settled too: the provider's answer is better than a guess.
    """
    if not provider_ids:
        return []
    now = timezone.now()
    table = connection.ops.quote_name(Delivery._meta.db_table)
    ids = list(provider_ids)
    pids = [provider_ids[i] for i in ids]
    costs = [cost_units.get(i, 1) for i in ids]
    # One UPDATE joined to the rows' own values: a CASE with a branch per row would cost rows x
    # branches, which at 1,000 rows a chunk dominated the whole send. The values travel as three
    # arrays (three parameters, not 3,000).
    source = "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::integer[])"
    params: list[Any] = [ids, pids, costs]
    # The status guard keeps a webhook that already moved a row to delivered from being
    # overwritten.
    guard = f"{table}.status = %s"
    guard_params: list[Any] = [DeliveryStatus.SENDING]
    if claim_id is not None:
        guard = f"{table}.status IN (%s, %s) AND {table}.claim_id = %s"
        guard_params = [DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN, claim_id]
    sql = (
        f"WITH v(id, pid, cost) AS ({source}) "
        f"UPDATE {table} SET status = %s, sent_at = %s, updated_at = %s, provider = %s, "
        f"error_code = '', error_text = '', provider_message_id = v.pid, cost_units = v.cost "
        f"FROM v WHERE {table}.id = v.id AND {guard} RETURNING {table}.id"
    )
    params += [DeliveryStatus.SENT, now, now, provider, *guard_params]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            moved = [row[0] for row in cursor.fetchall()]
        _events_append(ids=moved, status=DeliveryStatus.SENT, at=now, detail=provider)
    return moved


def deliveries_requeue_unsent(
    *,
    ids: Iterable[int],
    error_code: str,
    error_text: str,
    not_before: datetime | None = None,
    claim_id: int | None = None,
) -> list[int]:
    """sending -> queued for claimed rows whose request never left.

    The claim's attempt is given back (nothing was tried) and the claim let go, so the row is
    claimable again once due. Callers know which rows never left: the chunk itself, or the
    sweeper holding the claim's lock (delivery/inflight.py, claim_leaving).
    """
    ids = list(ids)
    if not ids:
        return []
    now = timezone.now()
    table = connection.ops.quote_name(Delivery._meta.db_table)
    id_match, id_params = sql_any_of("id", ids)
    claim_match, claim_params = ("", []) if claim_id is None else (" AND claim_id = %s", [claim_id])
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET status = %s, updated_at = %s, queued_at = %s, "
                f"not_before = %s, error_code = %s, error_text = %s, claim_id = NULL, "
                f"attempt = GREATEST(attempt - 1, 0) "
                f"WHERE {id_match} AND status = %s{claim_match} "
                f"RETURNING id",
                [
                    DeliveryStatus.QUEUED,
                    now,
                    now,
                    not_before,
                    error_code[:50],
                    error_text[:500],
                    *id_params,
                    DeliveryStatus.SENDING,
                    *claim_params,
                ],
            )
            moved = [row[0] for row in cursor.fetchall()]
        _events_append(
            ids=moved, status=DeliveryStatus.QUEUED, at=now, detail=f"retry: {error_code}"
        )
    return moved


def _events_append(*, ids: Iterable[int], status: str, at: datetime, detail: str) -> None:
    ids = list(ids)
    if not ids:
        return
    # One array parameter instead of 4,000 placeholders and 1,000 model instances.
    table = connection.ops.quote_name(DeliveryEvent._meta.db_table)
    delivery_table = connection.ops.quote_name(Delivery._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # Each event takes its delivery's workspace: a join on the rows just moved, which
            # the caller's statement has in cache.
            f"INSERT INTO {table} (workspace_id, delivery_id, status, occurred_at, detail) "
            f"SELECT d.workspace_id, d.id, %s, %s, %s FROM {delivery_table} d "
            f"WHERE d.id = ANY(%s::bigint[])",
            [status, at, detail[:500], ids],
        )
