"""Outage windows: open, hold, release, close, reopen (flap damping), declare and resolve.

Every change to a network's windows runs in one transaction that first locks that network's
NetworkLock row, so concurrent webhooks for one network are serialised and exactly one of them
opens (or closes) a window; the partial unique index on open windows is the backstop. Signals
are sent on commit, once per transition.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from outages.errors import UnknownNetwork, WindowNotOpen
from outages.models import (
    MonitorSource,
    NetworkLock,
    OpenedBy,
    OutageSignal,
    OutageWindow,
    SignalState,
    WindowEvent,
    WindowState,
)
from outages.networks import network_is_known
from outages.signals import outage_closed, outage_opened

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignalOutcome:
    """What applying one signal did: opened, reopened, joined, duplicate, released, closed,
    remembered (a resolve before its firing), stale (an older episode), or nothing."""

    network: str
    action: str
    window_id: int | None


def _send_on_commit(signal_name: str, window: OutageWindow, *, reopened: bool = False) -> None:
    signal = outage_opened if signal_name == "opened" else outage_closed

    def send() -> None:
        for receiver, result in signal.send_robust(
            sender=OutageWindow, window=window, reopened=reopened
        ):
            if isinstance(result, Exception):
                logger.error(
                    "outage_%s receiver %s failed for window %s: %r",
                    signal_name,
                    getattr(receiver, "__qualname__", receiver),
                    window.pk,
                    result,
                    extra={"window_id": window.pk},
                )

    transaction.on_commit(partial(send))


def _network_lock(network: str) -> int | None:
    """Lock the network's row (serialising every window change on it); return its open window.

    One statement for both, since this runs for every new alert. The row is created on first
    use; ignore_conflicts lets two first users race safely.
    """
    lock_table = NetworkLock._meta.db_table
    window_table = OutageWindow._meta.db_table
    # Only table names are interpolated, and they come from model metadata.
    sql = (
        f"SELECT w.id FROM {lock_table} n LEFT JOIN {window_table} w "  # noqa: S608
        "ON w.network = n.network AND w.state = %s WHERE n.network = %s FOR UPDATE OF n"
    )
    for _ in range(2):
        with connection.cursor() as cursor:
            cursor.execute(sql, [WindowState.OPEN, network])
            row = cursor.fetchone()
        if row is not None:
            return int(row[0]) if row[0] is not None else None
        NetworkLock.objects.bulk_create([NetworkLock(network=network)], ignore_conflicts=True)
    raise RuntimeError(f"could not lock network {network!r}")  # pragma: no cover


def _window_for_firing(
    *,
    network: str,
    open_window_id: int | None,
    now: datetime,
    source_kind: str,
    source: MonitorSource | None,
    source_ref: str,
    reason: str,
) -> tuple[int, str]:
    if open_window_id is not None:
        # The signal row itself (window, first_seen_at) records that it joined.
        return open_window_id, "joined"
    damping = timedelta(seconds=settings.OUTAGES_FLAP_DAMPING_S)
    recent = (
        OutageWindow.objects.select_for_update()
        .filter(network=network, state=WindowState.RESOLVED, closed_at__gte=now - damping)
        .order_by("-closed_at")
        .first()
    )
    if recent is not None:
        # Flap damping: closing and reopening within the interval is the same outage.
        recent.state = WindowState.OPEN
        recent.closed_at = None
        recent.closed_by = ""
        recent.close_reason = ""
        recent.reopen_count += 1
        recent.save(
            update_fields=["state", "closed_at", "closed_by", "close_reason", "reopen_count"]
        )
        WindowEvent.objects.create(
            window=recent, kind=WindowEvent.Kind.REOPENED, actor=source_ref, detail=reason
        )
        _send_on_commit("opened", recent, reopened=True)
        return recent.pk, "reopened"
    window = OutageWindow.objects.create(
        network=network,
        state=WindowState.OPEN,
        opened_at=now,
        opened_by=source_kind,
        opened_by_source=source,
        opened_by_ref=source_ref,
        reason=reason,
    )
    WindowEvent.objects.create(
        window=window, kind=WindowEvent.Kind.OPENED, actor=source_ref, detail=reason
    )
    _send_on_commit("opened", window)
    return window.pk, "opened"


def _close(window: OutageWindow, *, now: datetime, actor: str, reason: str) -> None:
    window.state = WindowState.RESOLVED
    window.closed_at = now
    window.closed_by = actor[:200]
    window.close_reason = reason
    window.save(update_fields=["state", "closed_at", "closed_by", "close_reason"])
    WindowEvent.objects.create(
        window=window, kind=WindowEvent.Kind.CLOSED, actor=actor, detail=reason
    )
    _send_on_commit("closed", window)


def outage_signal_apply(
    *,
    network: str,
    firing: bool,
    source_kind: str,
    source_ref: str,
    incident_key: str,
    source: MonitorSource | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    summary: str = "",
    link: str = "",
    remember: bool = True,
) -> SignalOutcome:
    """Apply one firing/resolved signal from one origin to its network's windows.

    The public entry for monitors (via intake), manual declarations and self-detected publishing
    failures (source_kind="self_detected", source_ref e.g. "publisher:facebook"). Idempotent per
    (source_kind, source_ref, incident_key, network). ``remember=False`` makes a resolve a mere
    release: it ends a known firing but is not kept for a firing that has not arrived yet (a
    Statuspage incident reporting a component operational is no resolve of that component's
    future outages).
    """
    if not network_is_known(network):
        raise UnknownNetwork(f"unknown network {network!r}")
    if source_kind not in OpenedBy.values:
        raise ValueError(f"source_kind must be one of {OpenedBy.values}")
    now = timezone.now()
    origin = {
        "source_kind": source_kind,
        "source_ref": source_ref,
        "incident_key": incident_key,
        "network": network,
    }
    # No savepoint when a caller's transaction is open: nothing here catches its own errors.
    with transaction.atomic(savepoint=False):
        if firing:
            repeat = _firing_repeat_count(origin=origin, now=now, started_at=started_at)
            if repeat is not None:
                return SignalOutcome(network, "duplicate", repeat)
        open_window_id = _network_lock(network)
        fields = {"summary": summary[:2000], "link": link[:2000]}
        if firing and open_window_id is not None:
            joined = _signal_insert_joining(
                origin=origin,
                window_id=open_window_id,
                source=source,
                started_at=started_at or now,
                now=now,
                fields=fields,
            )
            if joined:
                return SignalOutcome(network, "joined", open_window_id)
        signal = OutageSignal.objects.select_for_update().filter(**origin).first()
        if firing:
            return _firing(
                signal=signal,
                network=network,
                open_window_id=open_window_id,
                now=now,
                source_kind=source_kind,
                source=source,
                source_ref=source_ref,
                incident_key=incident_key,
                started_at=started_at,
                fields=fields,
            )
        return _resolved(
            signal=signal,
            network=network,
            now=now,
            source_kind=source_kind,
            source=source,
            source_ref=source_ref,
            incident_key=incident_key,
            started_at=started_at,
            ended_at=ended_at,
            fields=fields,
            remember=remember,
        )


def _firing_repeat_count(
    *, origin: dict[str, str], now: datetime, started_at: datetime | None
) -> int | None:
    """Count a repeat of a signal that already holds an open window: the common case.

    One statement instead of a locking read and an update (this is the webhook hot path). The
    UPDATE takes the signal's row lock, which every path that changes the signal also needs,
    so it cannot interleave with a resolve. Returns the window id, or None for the slow path.

    A repeat that says the firing started later than we knew (a PagerDuty reopen whose resolve
    we never saw) moves the episode's start forward, so that resolve, arriving late, is stale.
    """
    sig = OutageSignal._meta.db_table
    win = OutageWindow._meta.db_table
    # Only table names are interpolated, and they come from model metadata.
    sql = (
        f"UPDATE {sig} SET notifications = notifications + 1, last_seen_at = %s, "  # noqa: S608
        f"started_at = GREATEST({sig}.started_at, %s) "
        f"FROM {win} w WHERE w.id = {sig}.window_id AND w.state = %s AND {sig}.state = %s "
        f"AND {sig}.source_kind = %s AND {sig}.source_ref = %s AND {sig}.incident_key = %s "
        f"AND {sig}.network = %s RETURNING {sig}.window_id"
    )
    params: list[Any] = [
        now,
        started_at,
        WindowState.OPEN,
        SignalState.FIRING,
        origin["source_kind"],
        origin["source_ref"],
        origin["incident_key"],
        origin["network"],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _signal_insert_joining(
    *,
    origin: dict[str, str],
    window_id: int,
    source: MonitorSource | None,
    started_at: datetime,
    now: datetime,
    fields: dict[str, str],
) -> bool:
    """A never-seen alert joining an open window: one INSERT, or False if the origin exists.

    The unique constraint on the origin decides (ON CONFLICT DO NOTHING); an existing signal
    takes the general path, which reads and locks it.
    """
    table = OutageSignal._meta.db_table
    # Only the table name is interpolated, and it comes from model metadata.
    sql = (
        f"INSERT INTO {table} (network, source_kind, source_id, source_ref, incident_key, "  # noqa: S608
        "window_id, state, started_at, summary, link, notifications, first_seen_at, "
        "last_seen_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s) "
        "ON CONFLICT (source_kind, source_ref, incident_key, network) DO NOTHING RETURNING id"
    )
    params: list[Any] = [
        origin["network"],
        origin["source_kind"],
        source.pk if source is not None else None,
        origin["source_ref"],
        origin["incident_key"],
        window_id,
        SignalState.FIRING,
        started_at,
        fields["summary"],
        fields["link"],
        now,
        now,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


def _seen_again(signal: OutageSignal, *, started_at: datetime | None = None) -> None:
    changes: dict[str, Any] = {
        "notifications": signal.notifications + 1,
        "last_seen_at": timezone.now(),
    }
    if started_at is not None and (signal.started_at is None or started_at > signal.started_at):
        changes["started_at"] = started_at
    OutageSignal.objects.filter(pk=signal.pk).update(**changes)


def _firing(
    *,
    signal: OutageSignal | None,
    network: str,
    open_window_id: int | None,
    now: datetime,
    source_kind: str,
    source: MonitorSource | None,
    source_ref: str,
    incident_key: str,
    started_at: datetime | None,
    fields: dict[str, str],
) -> SignalOutcome:
    if (
        signal is not None
        and signal.state == SignalState.FIRING
        and signal.window_id is not None
        and signal.window_id == open_window_id
    ):
        # Repeats (repeat_interval, HA pairs, retries) change nothing.
        _seen_again(signal, started_at=started_at)
        return SignalOutcome(network, "duplicate", signal.window_id)
    if signal is not None and signal.state == SignalState.RESOLVED and signal.ended_at:
        if started_at is not None and started_at <= signal.ended_at:
            # The resolve of this very episode already arrived (out of order): it wins.
            _seen_again(signal)
            return SignalOutcome(network, "stale", signal.window_id)
        grace = timedelta(seconds=settings.OUTAGES_EARLY_RESOLVE_GRACE_S)
        if started_at is None and signal.window_id is None and now - signal.last_seen_at <= grace:
            # An undated firing right after a remembered early resolve is that resolve's firing.
            _seen_again(signal)
            return SignalOutcome(network, "stale", None)
    window_id, action = _window_for_firing(
        network=network,
        open_window_id=open_window_id,
        now=now,
        source_kind=source_kind,
        source=source,
        source_ref=source_ref,
        reason=fields["summary"] or f"{source_ref}: {incident_key}",
    )
    if signal is None:
        OutageSignal.objects.create(
            network=network,
            source_kind=source_kind,
            source=source,
            source_ref=source_ref,
            incident_key=incident_key,
            window_id=window_id,
            state=SignalState.FIRING,
            started_at=started_at or now,
            **fields,
        )
    else:
        signal.window_id = window_id
        signal.state = SignalState.FIRING
        signal.started_at = started_at or now
        signal.ended_at = None
        signal.notifications += 1
        signal.summary, signal.link = fields["summary"], fields["link"]
        signal.save()
    return SignalOutcome(network, action, window_id)


def _resolved(  # noqa: PLR0911 - one return per outcome reads clearer than a result variable
    *,
    signal: OutageSignal | None,
    network: str,
    now: datetime,
    source_kind: str,
    source: MonitorSource | None,
    source_ref: str,
    incident_key: str,
    started_at: datetime | None,
    ended_at: datetime | None,
    fields: dict[str, str],
    remember: bool = True,
) -> SignalOutcome:
    ended = ended_at or now
    if signal is None and not remember:
        return SignalOutcome(network, "nothing", None)
    if signal is None:
        # A resolve before its firing: remember it, so the late firing is recognised as stale.
        OutageSignal.objects.create(
            network=network,
            source_kind=source_kind,
            source=source,
            source_ref=source_ref,
            incident_key=incident_key,
            state=SignalState.RESOLVED,
            started_at=started_at,
            ended_at=ended,
            **fields,
        )
        return SignalOutcome(network, "remembered", None)
    if signal.state == SignalState.RESOLVED:
        _seen_again(signal)
        return SignalOutcome(network, "duplicate", signal.window_id)
    if signal.started_at and ended_at and ended_at < signal.started_at:
        # The resolve of an earlier episode, delivered late (it ended before the current one
        # began): the current firing still holds. Only the end counts: Alertmanager keeps the
        # earliest startsAt it has seen when it merges re-posted copies of an alert, so the
        # resolve of the current episode may carry an earlier start than its firing did.
        _seen_again(signal)
        return SignalOutcome(network, "stale", signal.window_id)
    signal.state = SignalState.RESOLVED
    signal.ended_at = ended
    signal.notifications += 1
    signal.save(update_fields=["state", "ended_at", "notifications", "last_seen_at"])
    window = (
        OutageWindow.objects.select_for_update()
        .filter(pk=signal.window_id or 0, state=WindowState.OPEN)
        .first()
    )
    if window is None:
        return SignalOutcome(network, "released", signal.window_id)
    if OutageSignal.objects.filter(window=window, state=SignalState.FIRING).exists():
        WindowEvent.objects.create(
            window=window, kind=WindowEvent.Kind.RELEASED, actor=source_ref, detail=incident_key
        )
        return SignalOutcome(network, "released", window.pk)
    _close(window, now=now, actor=source_ref, reason="every signal holding it resolved")
    return SignalOutcome(network, "closed", window.pk)


@dataclass(frozen=True)
class SignalInput:
    """One signal of a batch for ``outage_signals_apply`` (the arguments of outage_signal_apply
    that vary per alert)."""

    incident_key: str
    firing: bool
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""
    link: str = ""
    remember: bool = True


def outage_signals_apply(
    *,
    network: str,
    signals: Sequence[SignalInput],
    source_kind: str,
    source_ref: str,
    source: MonitorSource | None = None,
) -> list[SignalOutcome]:
    """Apply a batch of signals from one origin to one network, in one transaction.

    The same outcomes as applying each with ``outage_signal_apply``, set-based for the common
    cases so a big Alertmanager group costs a few statements, not a few per alert: repeats of
    firings already holding the open window, new firings joining it, and resolves of firings.
    Everything else (early resolves, stale episodes, a key twice in one batch) takes the
    one-by-one path. The network's lock is taken first and held to the end, so keep batches
    small enough to hold it briefly (intake cuts groups into OUTAGES_APPLY_BATCH).
    """
    if not network_is_known(network):
        raise UnknownNetwork(f"unknown network {network!r}")
    if source_kind not in OpenedBy.values:
        raise ValueError(f"source_kind must be one of {OpenedBy.values}")
    now = timezone.now()
    origin = {"source_kind": source_kind, "source_ref": source_ref, "network": network}
    outcomes: dict[int, SignalOutcome] = {}
    once = Counter(s.incident_key for s in signals)
    with transaction.atomic(savepoint=False):
        # The lock before any signal row: every writer that touches several signals of a network
        # takes it first, so row locks are never taken in two orders.
        open_window_id = _network_lock(network)
        firing = [i for i, s in enumerate(signals) if s.firing and once[s.incident_key] == 1]
        if firing:
            repeated = _firing_repeats_bulk(
                origin=origin, signals=[signals[i] for i in firing], now=now
            )
            for i in firing:
                if signals[i].incident_key in repeated:
                    outcomes[i] = SignalOutcome(
                        network, "duplicate", repeated[signals[i].incident_key]
                    )
        _new_firings_bulk(
            [i for i in firing if i not in outcomes],
            signals=signals,
            outcomes=outcomes,
            open_window_id=open_window_id,
            origin=origin,
            source=source,
            now=now,
        )
        # Firings left over (a new episode of a known key, a key twice) before any resolve, so a
        # batch that resolves a window's last holder while another alert fires never closes and
        # reopens it.
        for i, signal in enumerate(signals):
            if signal.firing and once[signal.incident_key] == 1 and i not in outcomes:
                outcomes[i] = _apply_one(signal, origin=origin, source=source)
        resolving = [
            i
            for i, s in enumerate(signals)
            if not s.firing and once[s.incident_key] == 1 and i not in outcomes
        ]
        if resolving:
            outcomes.update(
                _resolves_bulk(
                    origin=origin,
                    items=[(i, signals[i]) for i in resolving],
                    now=now,
                )
            )
        for i, signal in enumerate(signals):
            if i not in outcomes:
                outcomes[i] = _apply_one(signal, origin=origin, source=source)
    return [outcomes[i] for i in range(len(signals))]


def _new_firings_bulk(
    new: list[int],
    *,
    signals: Sequence[SignalInput],
    outcomes: dict[int, SignalOutcome],
    open_window_id: int | None,
    origin: dict[str, str],
    source: MonitorSource | None,
    now: datetime,
) -> None:
    """Firings of keys that hold nothing yet: the first opens the window, the rest join it."""
    while new and open_window_id is None:
        i = new.pop(0)
        outcomes[i] = _apply_one(signals[i], origin=origin, source=source)
        if outcomes[i].action in ("opened", "reopened", "joined"):
            open_window_id = outcomes[i].window_id
    if not new or open_window_id is None:
        return
    joined = _signals_insert_joining_bulk(
        origin=origin,
        signals=[signals[i] for i in new],
        window_id=open_window_id,
        source=source,
        now=now,
    )
    for i in new:
        if signals[i].incident_key in joined:
            outcomes[i] = SignalOutcome(origin["network"], "joined", open_window_id)


def _apply_one(
    signal: SignalInput, *, origin: dict[str, str], source: MonitorSource | None
) -> SignalOutcome:
    return outage_signal_apply(
        network=origin["network"],
        firing=signal.firing,
        source_kind=origin["source_kind"],
        source_ref=origin["source_ref"],
        incident_key=signal.incident_key,
        source=source,
        started_at=signal.started_at,
        ended_at=signal.ended_at,
        summary=signal.summary,
        link=signal.link,
        remember=signal.remember,
    )


def _rows(signals: Sequence[SignalInput], *fields: str) -> str:
    """The batch as one JSON parameter for jsonb_to_recordset: quoting one string is far cheaper
    for the driver than adapting several arrays of thousands of values."""
    rows = []
    for signal in signals:
        row: dict[str, Any] = {}
        for name in fields:
            value = getattr(signal, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, str) and name in ("summary", "link"):
                value = value[:2000]
            row[name] = value
        rows.append(row)
    return json.dumps(rows)


def _origin_params(origin: dict[str, str]) -> list[Any]:
    return [origin["source_kind"], origin["source_ref"], origin["network"]]


def _firing_repeats_bulk(
    *, origin: dict[str, str], signals: Sequence[SignalInput], now: datetime
) -> dict[str, int]:
    """_firing_repeat_count for many keys in one statement: {key: window id} of the repeats."""
    sig = OutageSignal._meta.db_table
    win = OutageWindow._meta.db_table
    # Only table names are interpolated, and they come from model metadata.
    # The LATERAL lookup (LIMIT 1 keeps the planner from flattening it) finds each key through
    # the origin's unique index whatever the statistics say: right after a burst of inserts,
    # stale statistics made the plain join hash every signal of the origin on each batch.
    sql = (
        f"UPDATE {sig} SET notifications = {sig}.notifications + 1, "  # noqa: S608
        f"last_seen_at = %s, started_at = GREATEST({sig}.started_at, m.started_at) "
        "FROM (SELECT s.id, v.started_at FROM jsonb_to_recordset(%s::jsonb) "
        "AS v(incident_key text, started_at timestamptz) CROSS JOIN LATERAL ("
        f"SELECT x.id FROM {sig} x JOIN {win} w ON w.id = x.window_id AND w.state = %s "
        "WHERE x.state = %s AND x.source_kind = %s AND x.source_ref = %s AND x.network = %s "
        "AND x.incident_key = v.incident_key LIMIT 1) s) m "
        f"WHERE {sig}.id = m.id RETURNING {sig}.incident_key, {sig}.window_id"
    )
    params: list[Any] = [
        now,
        _rows(signals, "incident_key", "started_at"),
        WindowState.OPEN,
        SignalState.FIRING,
        *_origin_params(origin),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {str(key): int(window_id) for key, window_id in cursor.fetchall()}


def _signals_insert_joining_bulk(
    *,
    origin: dict[str, str],
    signals: Sequence[SignalInput],
    window_id: int,
    source: MonitorSource | None,
    now: datetime,
) -> set[str]:
    """_signal_insert_joining for many never-seen keys: one INSERT; returns the keys inserted."""
    table = OutageSignal._meta.db_table
    # Only the table name is interpolated, and it comes from model metadata.
    sql = (
        f"INSERT INTO {table} (network, source_kind, source_id, source_ref, incident_key, "  # noqa: S608
        "window_id, state, started_at, summary, link, notifications, first_seen_at, "
        "last_seen_at) SELECT %s, %s, %s, %s, v.incident_key, %s, %s, "
        "COALESCE(v.started_at, %s), v.summary, v.link, 1, %s, %s "
        "FROM jsonb_to_recordset(%s::jsonb) "
        "AS v(incident_key text, started_at timestamptz, summary text, link text) "
        "ON CONFLICT (source_kind, source_ref, incident_key, network) DO NOTHING "
        "RETURNING incident_key"
    )
    params: list[Any] = [
        origin["network"],
        origin["source_kind"],
        source.pk if source is not None else None,
        origin["source_ref"],
        window_id,
        SignalState.FIRING,
        now,
        now,
        now,
        _rows(signals, "incident_key", "started_at", "summary", "link"),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {str(row[0]) for row in cursor.fetchall()}


def _resolves_bulk(
    *, origin: dict[str, str], items: list[tuple[int, SignalInput]], now: datetime
) -> dict[int, SignalOutcome]:
    """Resolve many firing signals in one statement, then close the windows left with no holder.

    Only firings this resolve ends (not one that began after it ended: stale) are touched here;
    the index of anything else is left out, for the one-by-one path.
    """
    sig = OutageSignal._meta.db_table
    # Only the table name is interpolated, and it comes from model metadata.
    # A LATERAL lookup through the origin's unique index, as in _firing_repeats_bulk.
    sql = (
        f"UPDATE {sig} SET state = %s, ended_at = COALESCE(m.ended_at, %s), "  # noqa: S608
        f"notifications = {sig}.notifications + 1, last_seen_at = %s "
        "FROM (SELECT s.id, v.ended_at FROM jsonb_to_recordset(%s::jsonb) "
        "AS v(incident_key text, ended_at timestamptz) CROSS JOIN LATERAL ("
        f"SELECT x.id FROM {sig} x WHERE x.state = %s AND x.source_kind = %s "
        "AND x.source_ref = %s AND x.network = %s AND x.incident_key = v.incident_key "
        "AND NOT (x.started_at IS NOT NULL AND v.ended_at IS NOT NULL "
        "AND v.ended_at < x.started_at) LIMIT 1) s) m "
        f"WHERE {sig}.id = m.id RETURNING {sig}.incident_key, {sig}.window_id"
    )
    params: list[Any] = [
        SignalState.RESOLVED,
        now,
        now,
        _rows([s for _, s in items], "incident_key", "ended_at"),
        SignalState.FIRING,
        *_origin_params(origin),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        released = {str(key): window_id for key, window_id in cursor.fetchall()}
    network = origin["network"]
    outcomes: dict[int, SignalOutcome] = {}
    by_window: dict[int, list[int]] = {}
    for i, signal in items:
        if signal.incident_key not in released:
            continue
        window_id = released[signal.incident_key]
        outcomes[i] = SignalOutcome(network, "released", window_id)
        if window_id is not None:
            by_window.setdefault(int(window_id), []).append(i)
    for window_id, indexes in by_window.items():
        window = (
            OutageWindow.objects.select_for_update()
            .filter(pk=window_id, state=WindowState.OPEN)
            .first()
        )
        if window is None:
            continue
        keys = [signal.incident_key for i, signal in items if i in set(indexes)]
        detail = ", ".join(keys[:20]) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
        if OutageSignal.objects.filter(window=window, state=SignalState.FIRING).exists():
            WindowEvent.objects.create(
                window=window,
                kind=WindowEvent.Kind.RELEASED,
                actor=origin["source_ref"],
                detail=detail,
            )
            continue
        _close(
            window, now=now, actor=origin["source_ref"], reason="every signal holding it resolved"
        )
        outcomes[indexes[-1]] = SignalOutcome(network, "closed", window_id)
    return outcomes


def outage_declare(*, network: str, reason: str, actor: str) -> OutageWindow:
    """An operator declares a network down (joins the open window if there is one)."""
    outcome = outage_signal_apply(
        network=network,
        firing=True,
        source_kind=OpenedBy.MANUAL,
        source_ref=f"manual:{actor}"[:200],
        incident_key="declared",
        summary=reason,
    )
    if outcome.window_id is not None:
        return OutageWindow.objects.get(pk=outcome.window_id)
    # A declaration right after its own early resolve: still hand back the open window.
    return OutageWindow.objects.get(network=network, state=WindowState.OPEN)


def outage_resolve(*, window: OutageWindow, reason: str, actor: str) -> OutageWindow:
    """An operator resolves a window: every signal holding it is released and it closes."""
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        _network_lock(window.network)
        locked = OutageWindow.objects.select_for_update().get(pk=window.pk)
        if locked.state != WindowState.OPEN:
            raise WindowNotOpen(f"outage #{locked.pk} is already resolved")
        OutageSignal.objects.filter(window=locked, state=SignalState.FIRING).update(
            state=SignalState.RESOLVED, ended_at=now, last_seen_at=now
        )
        _close(locked, now=now, actor=f"manual:{actor}", reason=reason or "resolved by an operator")
    return locked


# --- silent holders ---------------------------------------------------------------------------

# A holder is silent once it has missed this many of its sender's repeats: one late repeat
# (Alertmanager waits for the next group_interval tick) is not silence.
SILENCE_MISSED_REPEATS = 2


@dataclass(frozen=True)
class SilentWindow:
    """An open window whose every holder has been silent past its source's limit."""

    window_id: int
    network: str
    last_news_at: datetime
    auto_close: bool  # every holder's source is set to close on silence

    @property
    def message(self) -> str:
        return gettext("no news from the monitor since %(when)s") % {
            "when": self.last_news_at.strftime("%Y-%m-%d %H:%M UTC")
        }


def _repeat_limit_sql() -> tuple[str, list[Any]]:
    """SQL for one holder's silence limit in seconds (NULL: never silent), and its params.

    A holder without a source (manual declarations, our own publishing failures) never goes
    silent; a source's repeat_interval_s wins over its kind's default; 0 means no repeats.
    """
    from outages.normalisers import KINDS

    defaults = [(kind, n.default_repeat_interval_s) for kind, n in KINDS.items()]
    whens = " ".join("WHEN %s THEN %s" for _ in defaults)
    sql = (
        "CASE WHEN src.id IS NULL THEN NULL "
        "WHEN src.repeat_interval_s IS NOT NULL THEN NULLIF(src.repeat_interval_s, 0) "
        f"ELSE (CASE src.kind {whens} ELSE NULL END)::integer END * %s"
    )
    params: list[Any] = [value for pair in defaults for value in pair]
    return sql, [*params, SILENCE_MISSED_REPEATS]


def windows_silent(
    *, now: datetime | None = None, window_id: int | None = None
) -> list[SilentWindow]:
    """Open windows whose every firing holder has been silent past its limit (the banner's and
    dashboard's "no news from the monitor since ..."), oldest news first. One query."""
    now = now or timezone.now()
    win = OutageWindow._meta.db_table
    sig = OutageSignal._meta.db_table
    src = MonitorSource._meta.db_table
    limit_sql, limit_params = _repeat_limit_sql()
    # Only table names and the CASE built above (placeholders only) are interpolated.
    sql = (
        f"SELECT w.id, w.network, max(s.last_seen_at), bool_and(COALESCE(src.silence_auto_close, "  # noqa: S608
        f"false)) FROM {win} w JOIN {sig} s ON s.window_id = w.id AND s.state = %s "
        f"LEFT JOIN {src} src ON src.id = s.source_id WHERE w.state = %s "
        f"{'AND w.id = %s ' if window_id is not None else ''}GROUP BY w.id, w.network "
        # COALESCE: bool_and skips NULLs, and a holder that never goes silent (NULL limit) must
        # keep its window from being flagged, not be left out of the vote.
        f"HAVING bool_and(COALESCE(s.last_seen_at + make_interval(secs => ({limit_sql})) < %s, "
        "false)) "
        "ORDER BY max(s.last_seen_at)"
    )
    params: list[Any] = [SignalState.FIRING, WindowState.OPEN]
    if window_id is not None:
        params.append(window_id)
    params += [*limit_params, now]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            SilentWindow(
                window_id=int(pk), network=str(net), last_news_at=last, auto_close=bool(auto)
            )
            for pk, net, last, auto in cursor.fetchall()
        ]


def silent_windows_close(*, now: datetime | None = None) -> list[int]:
    """Close every silent window whose holders' sources are all set to auto-close; returns ids.

    Each in its own transaction under its network's lock, re-checked there (a repeat may have
    arrived since the read). The holders are released without an end time, so a sender that was
    only late repeats into a firing again instead of being taken for a stale episode.
    """
    closed = []
    for candidate in windows_silent(now=now):
        if not candidate.auto_close:
            continue
        with transaction.atomic(savepoint=False):
            _network_lock(candidate.network)
            current = windows_silent(now=now, window_id=candidate.window_id)
            if not current or not current[0].auto_close:
                continue
            window = OutageWindow.objects.select_for_update().get(pk=candidate.window_id)
            at = timezone.now()
            OutageSignal.objects.filter(window=window, state=SignalState.FIRING).update(
                state=SignalState.RESOLVED, ended_at=None, last_seen_at=at
            )
            _close(window, now=at, actor="silence", reason=current[0].message)
        closed.append(candidate.window_id)
        logger.warning(
            "closed outage window %s on %s: %s",
            candidate.window_id,
            candidate.network,
            current[0].message,
            extra={"window_id": candidate.window_id},
        )
    return closed
