"""The one way a Delivery changes status: a guarded bulk UPDATE plus its timeline rows.

The guard (`status IN allowed sources`) sits in the UPDATE itself, so a late or repeated provider
event, or a task racing a webhook, can only ever move a row forward. Rows the guard refuses are
simply not returned: callers see which ids moved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from continuity.sql import sql_any_of
from delivery.models import Delivery, DeliveryClaim, DeliveryEvent
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
    ctes, params = mark_sent_ctes(
        provider_ids=provider_ids, provider=provider, cost_units=cost_units, claim_id=claim_id
    )
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} SELECT id FROM moved", params)
        return [row[0] for row in cursor.fetchall()]


def mark_sent_ctes(
    *,
    provider_ids: Mapping[int, str],
    provider: str,
    cost_units: Mapping[int, int],
    claim_id: int | None = None,
) -> tuple[str, list[Any]]:
    """The WITH items of deliveries_mark_sent: `moved` holds the ids of the rows it moved.

    Separate so that the chunk's progress record can write an answer and the next request's
    "leaving" in one statement (delivery/inflight.py).
    """
    now = timezone.now()
    table = connection.ops.quote_name(Delivery._meta.db_table)
    events = connection.ops.quote_name(DeliveryEvent._meta.db_table)
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
    # The timeline rows are written by the same statement (a data-modifying WITH item): one round
    # trip and one atomic statement, which matters when a paced SMS chunk records each answer as
    # it comes rather than a thousand at the end.
    ctes = (
        f"v(id, pid, cost) AS ({source}), "
        f"moved AS (UPDATE {table} SET status = %s, sent_at = %s, updated_at = %s, provider = %s, "
        f"error_code = '', error_text = '', provider_message_id = v.pid, cost_units = v.cost "
        f"FROM v WHERE {table}.id = v.id AND {guard} "
        f"RETURNING {table}.id, {table}.workspace_id), "
        f"timeline AS (INSERT INTO {events} (workspace_id, delivery_id, status, occurred_at, "
        f"detail) SELECT workspace_id, id, %s, %s, %s FROM moved)"
    )
    params += [DeliveryStatus.SENT, now, now, provider, *guard_params]
    params += [DeliveryStatus.SENT, now, provider[:500]]
    return ctes, params


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


def claim_leaving(
    *,
    claim_id: int,
    delivery_ids: Sequence[int],
    sent: Mapping[int, tuple[str, int]] | None = None,
    provider: str = "",
) -> tuple[bool, list[int]]:
    """Record that the request for these deliveries is about to leave, in one UPDATE of the
    claim row; with `sent` (delivery id -> (provider id, cost)), the previous request's answers
    are written by the same statement. Returns (claim still held, rows moved to sent).

    False when the claim is gone: the sweeper judged the chunk dead and took its rows back, so
    nothing more may be sent under it (answers are still written: they are guarded by the claim
    on the rows, which the sweeper leaves on those it calls unknown). The sweeper resolves a
    claim holding its row lock, so this write and that resolution are ordered: either the sweeper
    sees these ids as leaving (they become `unknown`, and the answer that follows settles them),
    or this finds the claim gone and nothing is sent.
    """
    table = connection.ops.quote_name(DeliveryClaim._meta.db_table)
    leaving = f"UPDATE {table} SET leaving = %s::jsonb, heartbeat_at = %s WHERE id = %s"
    leaving_params: list[Any] = [
        json.dumps([int(i) for i in delivery_ids]),
        timezone.now(),
        claim_id,
    ]
    # Plain SQL, once per SMS between two slots of the pace: the ORM's query building showed.
    with connection.cursor() as cursor:
        if not sent:
            cursor.execute(leaving, leaving_params)
            return cursor.rowcount == 1, []
        ctes, params = mark_sent_ctes(
            provider_ids={i: pid for i, (pid, _) in sent.items()},
            provider=provider,
            cost_units={i: cost for i, (_, cost) in sent.items()},
            claim_id=claim_id,
        )
        cursor.execute(
            f"WITH {ctes}, held AS ({leaving} RETURNING id) "
            f"SELECT (SELECT count(*) FROM held), array(SELECT id FROM moved)",
            [*params, *leaving_params],
        )
        kept, moved = cursor.fetchone()
        return kept == 1, list(moved)


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
