"""Retention: every growing table's rows expire after a period per kind of record, per workspace
where the rows are a workspace's, never inside the kind's minimum (docs/privacy.md, "Retention and
records").

The apps declare their kinds in ``<app>/retention.py`` (found like admin modules), so this module
imports none of them: each kind names its table, the column its age is read from, and the SQL
conditions that keep a row longer (a delivery still in flight, consent evidence that still
stands). One beat task (``continuity.retention.run``) walks each kind's table in primary-key
order, one short transaction per batch: it locks only the rows it deletes (``FOR UPDATE SKIP
LOCKED``: a row someone else holds waits for the next pass), waits for no lock longer than
RETENTION_LOCK_TIMEOUT_MS, and records how far it got in the same transaction
(RetentionProgress), so a run killed between or inside batches resumes at the first row it did
not delete, and nothing is deleted twice. Every batch recomputes its cutoff from the current
periods and re-checks each row's age itself: the bookkeeping decides where to look, never what
to delete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from continuity import retention_rules as rules
from continuity.models import RetentionPolicy, RetentionProgress, Workspace

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key: one run at a time, whoever started it (beat, a command, a test).
_RUN_LOCK = 0x5E7E_0019


@dataclass(frozen=True)
class RetentionKind:
    """One kind of record that expires. ``where`` is extra SQL over the table aliased ``t``, in
    which ``{cutoff}`` stands for the row's cutoff (its workspace's, or the install's); a row is
    deleted only when ``t.<age_column> < {cutoff}`` and ``where`` both hold. ``dependents`` are
    "table.column" pairs whose rows point at a deleted row and go with it in the same
    statement. ``prepare`` runs first in each batch's transaction."""

    key: str
    label: str | Promise
    table: str
    age_column: str
    what: str | Promise
    minimum_reason: str | Promise
    per_workspace: bool = True
    personal_data: bool = True
    where: str = ""
    dependents: tuple[str, ...] = ()
    prepare: tuple[str, ...] = ()

    @property
    def minimum_days(self) -> int:
        return rules.MINIMUM_DAYS[self.key]

    @property
    def default_days(self) -> int:
        return int(settings.RETENTION_DAYS[self.key])


_KINDS: dict[str, RetentionKind] = {}
_discovered = False


def retention_kind_register(kind: RetentionKind) -> None:
    """Called by each app's retention module at import."""
    if kind.key not in rules.MINIMUM_DAYS:
        raise ValueError(f"retention kind {kind.key!r} has no minimum in retention_rules")
    _KINDS[kind.key] = kind


def retention_kinds() -> list[RetentionKind]:
    global _discovered  # noqa: PLW0603 - the apps' modules are imported once, on first use
    if not _discovered:
        autodiscover_modules("retention")
        _discovered = True
    return [_KINDS[key] for key in rules.MINIMUM_DAYS if key in _KINDS]


def retention_kind(key: str) -> RetentionKind:
    for kind in retention_kinds():
        if kind.key == key:
            return kind
    raise KeyError(key)


# --- periods --------------------------------------------------------------------------------------


def retention_period_validate(*, kind: RetentionKind, days: int) -> None:
    """A clear refusal of a period below the kind's minimum (or not a number of days)."""
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ValidationError(_("A period is a whole number of days, 1 or more."), code="invalid")
    if days < kind.minimum_days:
        raise ValidationError(
            _(
                "%(kind)s must be kept at least %(minimum)s days (%(reason)s); %(days)s is "
                "below that."
            )
            % {
                "kind": kind.label,
                "minimum": kind.minimum_days,
                "reason": kind.minimum_reason,
                "days": days,
            },
            code="below_minimum",
        )


def retention_period_set(*, workspace: Workspace, kind_key: str, days: int | None) -> None:
    """Set (``days``) or clear (None: back to the install default) a workspace's period."""
    kind = retention_kind(kind_key)
    if not kind.per_workspace:
        raise ValidationError(_("This kind of record is the install's, not a workspace's."))
    if days is None:
        RetentionPolicy.objects.filter(workspace=workspace, kind=kind.key).delete()
        return
    retention_period_validate(kind=kind, days=days)
    RetentionPolicy.objects.update_or_create(
        workspace=workspace, kind=kind.key, defaults={"days": days}
    )


def _effective_days(kind: RetentionKind, days: int | None) -> int:
    # The minimum wins over anything stored: a row written before a minimum was raised, or by
    # hand, still cannot cut into it.
    return max(days if days is not None else kind.default_days, kind.minimum_days, 1)


@dataclass(frozen=True)
class Period:
    kind: RetentionKind
    days: int
    own: bool  # the workspace's own period (else the install's default)


def retention_periods(*, workspace: Workspace | None) -> list[Period]:
    """What each kind keeps for this workspace (the install's defaults for None)."""
    own = (
        dict(RetentionPolicy.objects.filter(workspace=workspace).values_list("kind", "days"))
        if workspace is not None
        else {}
    )
    periods = []
    for kind in retention_kinds():
        days = own.get(kind.key) if kind.per_workspace else None
        periods.append(Period(kind=kind, days=_effective_days(kind, days), own=days is not None))
    return periods


def _cutoffs(kind: RetentionKind, now: datetime) -> tuple[datetime, list[int], list[datetime]]:
    default = now - timedelta(days=_effective_days(kind, None))
    if not kind.per_workspace:
        return default, [], []
    rows = list(RetentionPolicy.objects.filter(kind=kind.key).values_list("workspace_id", "days"))
    return (
        default,
        [ws for ws, _days in rows],
        [now - timedelta(days=_effective_days(kind, days)) for _ws, days in rows],
    )


# --- the SQL --------------------------------------------------------------------------------------


def _policy_sql(kind: RetentionKind) -> tuple[str, str, str]:
    """(the CTE, the join, the per-row cutoff expression)."""
    if not kind.per_workspace:
        return "", "", "%(default_cutoff)s"
    return (
        "policy(workspace_id, cutoff) AS (SELECT * FROM unnest("
        "%(workspaces)s::bigint[], %(cutoffs)s::timestamptz[])),",
        "LEFT JOIN policy p ON p.workspace_id = t.workspace_id",
        "COALESCE(p.cutoff, %(default_cutoff)s)",
    )


def _due_where(kind: RetentionKind, cutoff: str) -> str:
    extra = kind.where.format(cutoff=cutoff)
    return f"t.{kind.age_column} < {cutoff} {extra}"


def _batch_sql(kind: RetentionKind) -> str:
    cte, join, cutoff = _policy_sql(kind)
    gone = [
        f"gone_{i} AS (DELETE FROM {table} x USING doomed d WHERE x.{column} = d.id)"
        for i, (table, column) in enumerate(dep.split(".", 1) for dep in kind.dependents)
    ]
    return f"""
WITH {cte}
doomed AS (
    SELECT t.id FROM {kind.table} t {join}
    WHERE t.id > %(after)s AND t.id <= %(until)s AND {_due_where(kind, cutoff)}
    ORDER BY t.id
    LIMIT %(batch)s
    FOR UPDATE OF t SKIP LOCKED
){"".join(", " + g for g in gone)}
DELETE FROM {kind.table} t USING doomed d WHERE t.id = d.id RETURNING t.id
"""


_PROBE_ROWS = 64


def _horizon(kind: RetentionKind, *, after: int, latest_cutoff: datetime) -> int:
    """The last id worth looking at in this pass. Ids grow with their rows' age column, so the
    last old row is found by bisection over the primary key; each probe looks at a few rows, so
    one row written out of order (a backdated event) cannot hide the rows around it. Old rows
    past the horizon are not lost: the cutoff moves on and a later pass reaches them."""
    probe_sql = (
        "SELECT max(id) FILTER (WHERE old) FROM ("
        f"SELECT id, {kind.age_column} < %s AS old FROM {kind.table} "
        f"WHERE id > %s ORDER BY id LIMIT {_PROBE_ROWS}) probe"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max(id) FROM {kind.table}")
        top = cursor.fetchone()[0]
        cursor.execute(probe_sql, [latest_cutoff, after])
        first = cursor.fetchone()[0]
        if top is None or first is None:
            return after
        # An old row sits at lo; the last old one is in [lo, hi].
        lo, hi = first, top
        while lo < hi:
            mid = (lo + hi + 1) // 2
            cursor.execute(probe_sql, [latest_cutoff, mid - 1])
            found = cursor.fetchone()[0]
            if found is None:
                hi = mid - 1
            else:
                lo = min(found, hi)
        return lo


# --- the run --------------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    batches: int = 0
    max_batch_s: float = 0.0
    interrupted: str = ""
    skipped: str = ""

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


@dataclass(frozen=True)
class BatchDone:
    kind: str
    deleted: int
    after_id: int
    seconds: float


def retention_run(
    *,
    kinds: Iterable[str] | None = None,
    now: Callable[[], datetime] = timezone.now,
    batch: int | None = None,
    scan_window: int | None = None,
    max_seconds: float | None = None,
    on_batch: Callable[[BatchDone], None] | None = None,
) -> RetentionReport:
    """Delete what is past its period, kind after kind, until done or out of time; returns what
    was deleted. A database failure ends the run cleanly (``interrupted`` says why): what was
    committed stays committed and the next run goes on from there."""
    report = RetentionReport()
    wanted = set(kinds) if kinds is not None else None
    batch = batch or settings.RETENTION_BATCH
    scan_window = scan_window or settings.RETENTION_SCAN_WINDOW
    deadline = time.monotonic() + (max_seconds or settings.RETENTION_RUN_MAX_S)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_RUN_LOCK])
            if not cursor.fetchone()[0]:
                report.skipped = "another retention run holds the lock"
                return report
        try:
            for kind in retention_kinds():
                if wanted is not None and kind.key not in wanted:
                    continue
                if time.monotonic() >= deadline:
                    break
                _run_kind(
                    kind,
                    report=report,
                    now=now,
                    batch=batch,
                    scan_window=scan_window,
                    deadline=deadline,
                    on_batch=on_batch,
                )
            if wanted is None or EXPIRED_SESSIONS in wanted:
                _expired_sessions_delete(report=report, batch=batch, deadline=deadline)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_RUN_LOCK])
    except DatabaseError as exc:
        # The database went away or a lock wait timed out: the batch in flight rolled back, the
        # ones before it are committed with their progress. The connection may be dead; close
        # it so the next use opens a fresh one.
        report.interrupted = f"{type(exc).__name__}: {exc}".strip()[:500]
        logger.warning("retention run interrupted: %s", report.interrupted)
        connection.close()
    if report.total or report.interrupted:
        logger.info(
            "retention deleted %s rows",
            report.total,
            extra={"deleted": report.deleted, "interrupted": report.interrupted},
        )
    return report


def _run_kind(
    kind: RetentionKind,
    *,
    report: RetentionReport,
    now: Callable[[], datetime],
    batch: int,
    scan_window: int,
    deadline: float,
    on_batch: Callable[[BatchDone], None] | None,
) -> None:
    progress, _created = RetentionProgress.objects.get_or_create(kind=kind.key)
    if progress.after_id >= progress.upto_id:
        # A new pass: from the first row to the last one old enough for the shortest period.
        default, _ws, cutoffs = _cutoffs(kind, now())
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT min(id) FROM {kind.table}")
            first = cursor.fetchone()[0]
        start = (first - 1) if first is not None else 0
        upto = _horizon(kind, after=start, latest_cutoff=max([default, *cutoffs]))
        if upto <= start:
            RetentionProgress.objects.filter(pk=progress.pk).update(
                after_id=0, upto_id=0, last_finished_at=now()
            )
            report.finished.append(kind.key)
            return
        RetentionProgress.objects.filter(pk=progress.pk).update(
            after_id=start, upto_id=upto, pass_started_at=now()
        )
        progress.after_id, progress.upto_id = start, upto
    sql = _batch_sql(kind)
    after, upto = progress.after_id, progress.upto_id
    while after < upto and time.monotonic() < deadline:
        started = time.monotonic()
        default, workspaces, cutoffs = _cutoffs(kind, now())
        _minimum_check(kind, default, cutoffs, now())
        until = min(upto, after + scan_window)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                [f"{settings.RETENTION_LOCK_TIMEOUT_MS}ms"],
            )
            for statement in kind.prepare:
                cursor.execute(statement)
            cursor.execute(
                sql,
                {
                    "after": after,
                    "until": until,
                    "batch": batch,
                    "default_cutoff": default,
                    "workspaces": workspaces,
                    "cutoffs": cutoffs,
                },
            )
            ids = [row[0] for row in cursor.fetchall()]
            # A full batch may have left rows of the window unexamined: go on after the last
            # one deleted. A short one examined the whole window.
            after = max(ids) if len(ids) >= batch else until
            RetentionProgress.objects.filter(pk=progress.pk).update(
                after_id=after,
                last_batch_at=now(),
                deleted_total=progress.deleted_total + len(ids),
                **({"last_finished_at": now()} if after >= upto else {}),
            )
            progress.deleted_total += len(ids)
        seconds = time.monotonic() - started
        report.batches += 1
        report.max_batch_s = max(report.max_batch_s, seconds)
        report.deleted[kind.key] = report.deleted.get(kind.key, 0) + len(ids)
        if on_batch is not None:
            on_batch(BatchDone(kind=kind.key, deleted=len(ids), after_id=after, seconds=seconds))
    if after >= upto:
        report.finished.append(kind.key)


def _minimum_check(
    kind: RetentionKind, default: datetime, cutoffs: list[datetime], now: datetime
) -> None:
    floor = now - timedelta(days=kind.minimum_days)
    if any(cutoff > floor for cutoff in [default, *cutoffs]):
        # Unreachable through _effective_days; kept so that a future change to it cannot
        # quietly delete inside the minimum.
        raise AssertionError(f"retention cutoff of {kind.key} inside its minimum")


# --- what the admin page shows ------------------------------------------------------------------


@dataclass(frozen=True)
class KindOverview:
    period: Period
    due: int | None  # rows past the period now (None: counting took too long)
    due_capped: bool


DUE_COUNT_CAP = 100_000


def retention_overview(*, workspace: Workspace, now: datetime | None = None) -> list[KindOverview]:
    """Per kind: how long this workspace's rows are kept and how many are due for deletion (for
    install-wide kinds, the install's rows)."""
    moment = now or timezone.now()
    rows = []
    for period in retention_periods(workspace=workspace):
        kind = period.kind
        cutoff = moment - timedelta(days=period.days)
        scope = "AND t.workspace_id = %(workspace)s" if kind.per_workspace else ""
        sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM {kind.table} t "
            f"WHERE {_due_where(kind, '%(cutoff)s')} {scope} LIMIT {DUE_COUNT_CAP + 1}) due"
        )
        due: int | None
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', '1500ms', true)")
                cursor.execute(sql, {"cutoff": cutoff, "workspace": workspace.pk})
                due = int(cursor.fetchone()[0])
        except DatabaseError:
            due = None
        rows.append(
            KindOverview(
                period=period,
                due=min(due, DUE_COUNT_CAP) if due is not None else None,
                due_capped=due is not None and due > DUE_COUNT_CAP,
            )
        )
    return rows


def retention_progress() -> dict[str, RetentionProgress]:
    return {p.kind: p for p in RetentionProgress.objects.all()}


def _axes_cooloff_seconds() -> int:
    # django-axes reads a bare number as hours; a callable or dotted path is not ours to call.
    cooloff = getattr(settings, "AXES_COOLOFF_TIME", None)
    if isinstance(cooloff, timedelta):
        return int(cooloff.total_seconds())
    if isinstance(cooloff, int | float) and not isinstance(cooloff, bool):
        return int(cooloff * 3600)
    return 0


# Failed admin sign-ins that django-axes keeps (a successful sign-in deletes its own): user name
# typed, IP address, browser. A row younger than the cool-off is the lockout counter, so it is
# kept whatever the period (the number is an int from settings, not input).
retention_kind_register(
    RetentionKind(
        key=rules.LOGIN_ATTEMPTS,
        label=gettext_lazy("Failed sign-in attempts"),
        table="axes_accessattempt",
        age_column="attempt_time",
        what=gettext_lazy(
            "Failed admin sign-ins that never ended in a successful one: the user name typed, "
            "the IP address and browser. They lock a name and address out after too many tries."
        ),
        minimum_reason=gettext_lazy("they count failures during the lockout's cool-off"),
        per_workspace=False,
        where=(f"AND t.attempt_time < now() - make_interval(secs => {_axes_cooloff_seconds()})"),
        dependents=("axes_accessattemptexpiration.access_attempt_id",),
    )
)


# --- expired sessions -----------------------------------------------------------------------------

EXPIRED_SESSIONS = "expired_sessions"
_DATABASE_SESSIONS = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


def _expired_sessions_delete(*, report: RetentionReport, batch: int, deadline: float) -> None:
    """Delete sessions past their own expiry (Django's ``clearsessions``, in short batches). No
    period: an expired session can no longer sign anyone in, so nothing is lost; it is not a
    kind because its key is text, not the growing id the kinds walk."""
    if settings.SESSION_ENGINE not in _DATABASE_SESSIONS:
        return
    from django.contrib.sessions.models import Session

    table = connection.ops.quote_name(Session._meta.db_table)
    sql = (
        f"WITH doomed AS (SELECT session_key FROM {table} WHERE expire_date < now() "  # nosec B608
        f"LIMIT %s FOR UPDATE SKIP LOCKED) "
        f"DELETE FROM {table} s USING doomed d WHERE s.session_key = d.session_key"
    )
    while time.monotonic() < deadline:
        started = time.monotonic()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                [f"{settings.RETENTION_LOCK_TIMEOUT_MS}ms"],
            )
            cursor.execute(sql, [batch])
            deleted = cursor.rowcount
        report.batches += 1
        report.max_batch_s = max(report.max_batch_s, time.monotonic() - started)
        if deleted:
            report.deleted[EXPIRED_SESSIONS] = report.deleted.get(EXPIRED_SESSIONS, 0) + deleted
        if deleted < batch:
            report.finished.append(EXPIRED_SESSIONS)
            return


# The audit trail is the project's own kind: its trigger lets the run (and nothing else) delete
# rows, and only past the minimum (continuity migration 0003).
retention_kind_register(
    RetentionKind(
        key=rules.AUDIT_EVENTS,
        label=gettext_lazy("Audit events"),
        table="continuity_auditevent",
        age_column="at",
        what=gettext_lazy(
            "Who did what in the workspace: exports, erasures, imports, consent changes made by "
            "staff, members, credentials, refusals."
        ),
        minimum_reason=gettext_lazy(
            "accountability evidence (GDPR Art. 5(2)) for the limitation period of fines and claims"
        ),
        prepare=("SELECT set_config('continuity.retention', 'on', true)",),
    )
)
