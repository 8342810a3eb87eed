"""Planning deliveries for an audience, set-based: one slice of contacts, a few SQL statements.

A slice (contacts with id > cursor, in id order, at most `limit`) is first materialised into a
temporary table with one row per contact and a flag per channel: consent granted for the purpose,
suppressed, reachable (an address, a phone, an active push subscription). From that table one
INSERT ... SELECT writes the Delivery rows (ON CONFLICT DO NOTHING on the UNIQUE key, so a
redelivered planning task or a second alert adds nothing) and one aggregate counts who was left
out and why. No contact data ever leaves the database, and memory does not grow with the audience.

The same statements without the INSERT serve the outage drill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from contacts.models import (
    Channel,
    Consent,
    Contact,
    PushSubscription,
    consent_bit,
)
from delivery.models import Delivery
from delivery.states import LEFT_STATUSES, DeliveryStatus

FIRST_REACHABLE = "first_reachable"
ALL_CHANNELS = "all"
EXCLUSION_REASONS = (
    "no_consent",
    "suppressed",
    "unreachable",
    "over_sms_budget",
    "frequency_cap",
    "already_reached",
)
_TEMP = "continuity_plan_slice"
_CHOSEN = "continuity_plan_chosen"
_PLANNABLE = frozenset(Channel.values)


@dataclass(frozen=True)
class PlanSpec:
    """What to plan: the message, its purpose, the ordered fallback channels and the rules."""

    message_id: int
    purpose: str
    channels: Sequence[str]
    mode: str = FIRST_REACHABLE
    frequency_cap: int | None = None
    # Contacts already reached on this channel for this message are left out (WhatsApp: a
    # message that left is not sent again on another channel).
    skip_reached_on: str = ""
    sms_cost_units: int = 1

    def __post_init__(self) -> None:
        # Channel names become SQL column aliases and literals: only known ones get that far.
        unknown = [
            ch for ch in (*self.channels, self.skip_reached_on) if ch and ch not in _PLANNABLE
        ]
        if unknown or not self.channels:
            raise ValueError(f"cannot plan channels {unknown or 'none'}")
        if self.mode not in (FIRST_REACHABLE, ALL_CHANNELS):
            raise ValueError(f"unknown plan mode {self.mode!r}")


@dataclass
class SliceResult:
    contacts: int = 0
    last_contact_id: int = 0
    planned: dict[str, int] = field(default_factory=dict)
    exclusions: dict[str, int] = field(default_factory=dict)
    delayed_quiet_hours: int = 0
    sms_only_planned: int = 0
    sms_alt_planned: int = 0


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model: type[Any]) -> str:
    return _q(model._meta.db_table)


def _flag_sql(channel: str, purpose: str) -> tuple[str, list[Any]]:
    """b_<ch> and r_<ch> columns: may be sent to (consented, not suppressed), and reachable.

    Contact.sendable holds "consented, not suppressed, not erased" as one bit per (channel,
    purpose), kept by contacts.consent in the same transaction as every change, so planning reads
    one column instead of probing the consent and suppression tables for every contact. Reach is
    only looked up where the bit is set (CASE evaluates in order); why the others are left out is
    worked out afterwards, for them alone (see _exclusions).
    """
    bit = int(consent_bit(channel, purpose))
    params: list[Any] = []
    if channel == Channel.EMAIL:
        reach = "(c.email IS NOT NULL AND c.email <> '')"
    elif channel in (Channel.SMS, Channel.WHATSAPP):
        reach = "(c.phone IS NOT NULL AND c.phone <> '')"
    elif channel == Channel.PUSH:
        reach = (
            f"EXISTS (SELECT 1 FROM {_table(PushSubscription)} p "
            f"WHERE p.contact_id = c.id AND p.active = %s)"
        )
        params.append(True)
    else:
        raise ValueError(f"cannot plan channel {channel!r}")
    sendable = f"(c.sendable & {bit}) <> 0"
    sql = (
        f"CASE WHEN {sendable} THEN 1 ELSE 0 END AS b_{channel}, "
        f"CASE WHEN {sendable} AND {reach} THEN 1 ELSE 0 END AS r_{channel}"
    )
    return sql, params


def _eligible(channel: str, alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return f"({p}b_{channel} = 1 AND {p}r_{channel} = 1)"


def _materialise_slice(
    *, spec: PlanSpec, audience: QuerySet[Contact], after_id: int, limit: int, now: datetime
) -> tuple[int, int]:
    """Fill the temp table with the next slice and its flags: (contacts in it, last contact id)."""
    # The slice's upper bound first, then a plain id range: with the LIMIT inside the IN list the
    # planner scanned every contact once per slice (0.4 s a slice at 1,000,000 contacts).
    upper = (
        audience.filter(pk__gt=after_id).order_by("pk").values_list("pk", flat=True)[limit - 1 :]
    ).first()
    if upper is None:
        upper = (
            audience.filter(pk__gt=after_id).order_by("-pk").values_list("pk", flat=True).first()
        )
    if upper is None:
        return 0, after_id
    ids = audience.filter(pk__gt=after_id, pk__lte=upper).values("pk")
    ids_sql, ids_params = ids.query.sql_with_params()
    flags: list[str] = []
    flag_params: list[Any] = []
    for channel in spec.channels:
        sql, params = _flag_sql(channel, spec.purpose)
        flags.append(sql)
        flag_params += params
    recent_sql, recent_params = "0", list[Any]()
    if spec.frequency_cap is not None:
        recent_sql = (
            f"(SELECT COUNT(*) FROM {_table(Delivery)} d WHERE d.contact_id = c.id "
            f"AND d.created_at >= %s AND d.message_id <> %s AND d.status NOT IN (%s, %s, %s))"
        )
        recent_params = [
            now - timedelta(days=1),
            spec.message_id,
            DeliveryStatus.CANCELLED,
            DeliveryStatus.SUPPRESSED,
            DeliveryStatus.FAILED,
        ]
    reached_sql, reached_params = "0", list[Any]()
    if spec.skip_reached_on:
        left = sorted(LEFT_STATUSES)
        reached_sql = (
            f"CASE WHEN EXISTS (SELECT 1 FROM {_table(Delivery)} w WHERE w.contact_id = c.id "
            f"AND w.message_id = %s AND w.channel = %s AND w.status IN "
            f"({', '.join(['%s'] * len(left))})) THEN 1 ELSE 0 END"
        )
        reached_params = [spec.message_id, spec.skip_reached_on, *left]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_TEMP}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_TEMP} AS SELECT c.id AS id, "
            f"COALESCE(c.timezone, '') AS tz, {', '.join(flags)}, "
            f"{recent_sql} AS recent, {reached_sql} AS reached "
            f"FROM {_table(Contact)} c WHERE c.id > %s AND c.id <= %s AND c.id IN ({ids_sql})",
            [*flag_params, *recent_params, *reached_params, after_id, upper, *ids_params],
        )
        cursor.execute(f"SELECT COUNT(*), COALESCE(MAX(id), 0) FROM {_TEMP}")
        count, last_id = cursor.fetchone()
    return int(count), int(last_id)


def _quiet_not_before(*, channel: str, tzs: list[str], now: datetime) -> dict[str, datetime]:
    """For each time zone inside the channel's quiet hours now, when they end (UTC)."""
    window = settings.REROUTE_QUIET_HOURS.get(channel)
    if not window:
        return {}
    start, end = (time.fromisoformat(part) for part in window.split("-"))
    result: dict[str, datetime] = {}
    for tz_name in tzs:
        try:
            zone = ZoneInfo(tz_name or settings.REROUTE_DEFAULT_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(settings.REROUTE_DEFAULT_TIMEZONE)
        local = now.astimezone(zone)
        clock = local.time()
        quiet = (start <= clock or clock < end) if start > end else (start <= clock < end)
        if not quiet:
            continue
        end_day = local.date() if clock < end else local.date() + timedelta(days=1)
        opening = datetime.combine(end_day, end, tzinfo=zone)
        result[tz_name] = opening.astimezone(ZoneInfo("UTC"))
    return result


def _choice_sql(spec: PlanSpec, *, allow_only: int | None, allow_alt: int | None) -> str:
    """A SELECT over the temp table giving (id, tz, channel) rows to plan."""
    eligible = {ch: _eligible(ch) for ch in spec.channels}
    others = {
        ch: " OR ".join(eligible[o] for o in spec.channels if o != ch) or "1 = 0"
        for ch in spec.channels
    }
    base_filter = "recent < %(cap)s AND reached = 0" if spec.frequency_cap else "reached = 0"
    if spec.mode == ALL_CHANNELS:
        parts = []
        for ch in spec.channels:
            cond = eligible[ch]
            if ch == Channel.SMS and allow_alt is not None and allow_only is not None:
                cond += " AND sms_ok = 1"
            parts.append(f"SELECT id, tz, '{ch}' AS channel FROM ranked WHERE {cond}")
        union = " UNION ALL ".join(parts)
        return _ranked_sql(spec, others, base_filter, allow_only, allow_alt) + union
    # First reachable: walk the ordered channels; SMS may be skipped for budget, in which case
    # the contact falls through to its next eligible channel.
    whens = []
    for ch in spec.channels:
        cond = eligible[ch]
        if ch == Channel.SMS and allow_alt is not None and allow_only is not None:
            cond += " AND sms_ok = 1"
        whens.append(f"WHEN {cond} THEN '{ch}'")
    choice = f"CASE {' '.join(whens)} END"
    return (
        _ranked_sql(spec, others, base_filter, allow_only, allow_alt)
        + f"SELECT id, tz, channel FROM (SELECT id, tz, {choice} AS channel FROM ranked) picked "
        f"WHERE channel IS NOT NULL"
    )


def _ranked_sql(
    spec: PlanSpec,
    others: Mapping[str, str],
    base_filter: str,
    allow_only: int | None,
    allow_alt: int | None,
) -> str:
    """A CTE adding sms_ok: whether this contact may take an SMS within the budget.

    Contacts with no other channel come first: they are ranked apart and draw on the share of
    the budget reserved for them.
    """
    if Channel.SMS not in spec.channels or allow_only is None or allow_alt is None:
        return f"WITH ranked AS (SELECT * FROM {_TEMP} WHERE {base_filter}) "
    sms = _eligible(Channel.SMS)
    has_alt = f"CASE WHEN {others[Channel.SMS]} THEN 1 ELSE 0 END"
    return (
        f"WITH base AS (SELECT *, {has_alt} AS has_alt FROM {_TEMP} WHERE {base_filter}), "
        f"wanting AS (SELECT id, has_alt, ROW_NUMBER() OVER (PARTITION BY has_alt ORDER BY id) "
        f"AS rn FROM base WHERE {sms}), "
        f"ranked AS (SELECT base.*, CASE WHEN (wanting.has_alt = 0 AND wanting.rn <= {allow_only})"
        f" OR (wanting.has_alt = 1 AND wanting.rn <= {allow_alt}) THEN 1 ELSE 0 END AS sms_ok "
        f"FROM base LEFT JOIN wanting ON wanting.id = base.id) "
    )


def deliveries_plan_slice(
    *,
    spec: PlanSpec,
    audience: QuerySet[Contact],
    after_contact_id: int,
    limit: int,
    sms_allowance: tuple[int, int] | None = None,
    write: bool = True,
) -> SliceResult:
    """Plan one keyset slice of the audience. `sms_allowance` = (reserved for contacts with SMS
    only, left for the others) in SMS deliveries; None means no budget. With write=False nothing
    is inserted: the counts say what would be planned (the drill)."""
    now = timezone.now()
    result = SliceResult()
    cap = {"cap": spec.frequency_cap or 0}
    allow_only, allow_alt = sms_allowance if sms_allowance else (None, None)
    with transaction.atomic():
        result.contacts, result.last_contact_id = _materialise_slice(
            spec=spec, audience=audience, after_id=after_contact_id, limit=limit, now=now
        )
        if not result.contacts:
            return result
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT tz FROM {_TEMP}")
            tzs = [row[0] for row in cursor.fetchall()]
        quiet = {ch: _quiet_not_before(channel=ch, tzs=tzs, now=now) for ch in spec.channels}
        choice = _choice_sql(spec, allow_only=allow_only, allow_alt=allow_alt) % {
            "cap": int(cap["cap"])
        }
        not_before_cases: list[str] = []
        not_before_params: list[Any] = []
        for ch, zones in quiet.items():
            for tz_name, opening in zones.items():
                not_before_cases.append("WHEN chosen.channel = %s AND chosen.tz = %s THEN %s")
                not_before_params += [ch, tz_name, opening]
        not_before = (
            f"CASE {' '.join(not_before_cases)} ELSE NULL END" if not_before_cases else "NULL"
        )
        with connection.cursor() as cursor:
            # The choice is evaluated once into its own temporary table; the insert and every
            # count below read that table instead of re-running the choice.
            cursor.execute(f"DROP TABLE IF EXISTS {_CHOSEN}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {_CHOSEN} AS SELECT chosen.id AS id, chosen.channel "
                f"AS channel, CAST(({not_before}) AS TIMESTAMP WITH TIME ZONE) AS not_before "
                f"FROM ({choice}) chosen",
                not_before_params,
            )
            if write:
                sms_cost = int(spec.sms_cost_units)
                cost = f"CASE WHEN channel = '{Channel.SMS}' THEN {sms_cost} ELSE 1 END"
                cursor.execute(
                    f"INSERT INTO {_table(Delivery)} (message_id, contact_id, channel, status, "
                    "attempt, provider, provider_message_id, error_code, error_text, cost_units, "
                    "not_before, created_at, updated_at) "
                    f"SELECT %s, id, channel, %s, 0, '', '', '', '', {cost}, not_before, %s, %s "
                    f"FROM {_CHOSEN} WHERE 1 = 1 "
                    "ON CONFLICT (message_id, contact_id, channel) DO NOTHING",
                    [spec.message_id, DeliveryStatus.PLANNED, now, now],
                )
            cursor.execute(
                "SELECT channel, COUNT(*), SUM(CASE WHEN not_before IS NOT NULL THEN 1 ELSE 0 END) "
                f"FROM {_CHOSEN} GROUP BY channel"
            )
            for channel, count, delayed in cursor.fetchall():
                result.planned[channel] = int(count)
                result.delayed_quiet_hours += int(delayed or 0)
            result.exclusions = _exclusions(cursor, spec=spec)
            if Channel.SMS in spec.channels:
                others = (
                    " OR ".join(_eligible(ch, "t") for ch in spec.channels if ch != Channel.SMS)
                    or "1 = 0"
                )
                cursor.execute(
                    f"SELECT COALESCE(SUM(CASE WHEN {others} THEN 1 ELSE 0 END), 0), COUNT(*) "
                    f"FROM {_CHOSEN} chosen JOIN {_TEMP} t ON t.id = chosen.id "
                    f"WHERE chosen.channel = %s",
                    [Channel.SMS],
                )
                with_alt, total_sms = cursor.fetchone()
                result.sms_alt_planned = int(with_alt)
                result.sms_only_planned = int(total_sms) - int(with_alt)
    return result


def _exclusions(cursor: Any, *, spec: PlanSpec) -> dict[str, int]:
    """Why each contact of the slice that got nothing was left out (first matching reason)."""
    sendable_somewhere = " OR ".join(f"b_{ch} = 1" for ch in spec.channels)
    cap_case = (
        f"WHEN recent >= {int(spec.frequency_cap)} THEN 'frequency_cap' "
        if spec.frequency_cap
        else ""
    )
    sms_budget = ""
    if Channel.SMS in spec.channels:
        # Eligible for SMS yet not chosen: only the budget (or the cap, tested first) does that.
        sms_budget = f"WHEN {_eligible(Channel.SMS)} THEN 'over_sms_budget' "
    channels = list(spec.channels)
    marks = ", ".join(["%s"] * len(channels))
    # Only contacts without any sendable bit reach this probe: a granted consent means the
    # channel is suppressed (or the contact erased), none means no consent at all.
    consented = (
        f"EXISTS (SELECT 1 FROM {_table(Consent)} k WHERE k.contact_id = t.id "
        f"AND k.purpose = %s AND k.state = %s AND k.channel IN ({marks}))"
    )
    cursor.execute(
        f"SELECT reason, COUNT(*) FROM (SELECT CASE WHEN reached = 1 THEN 'already_reached' "
        f"{cap_case}"
        f"{sms_budget}"
        f"WHEN {sendable_somewhere} THEN 'unreachable' "
        f"WHEN {consented} THEN 'suppressed' "
        f"ELSE 'no_consent' END AS reason FROM {_TEMP} t "
        f"WHERE t.id NOT IN (SELECT id FROM {_CHOSEN})) excluded GROUP BY reason",
        [spec.purpose, "granted", *channels],
    )
    return {reason: int(count) for reason, count in cursor.fetchall()}


def sms_only_count(*, spec: PlanSpec, audience: QuerySet[Contact], limit: int) -> int:
    """Contacts in the audience whose only eligible plan channel is SMS (the budget's first
    claimants), counted slice by slice so memory stays flat."""
    if Channel.SMS not in spec.channels:
        return 0
    total, after = 0, 0
    others = " OR ".join(_eligible(ch) for ch in spec.channels if ch != Channel.SMS) or "1 = 0"
    reached = "reached = 0"
    while True:
        with transaction.atomic():
            count, after_next = _materialise_slice(
                spec=spec, audience=audience, after_id=after, limit=limit, now=timezone.now()
            )
            if not count:
                return total
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT COUNT(*) FROM {_TEMP} WHERE {_eligible(Channel.SMS)} "
                    f"AND NOT ({others}) AND {reached}"
                )
                total += int(cursor.fetchone()[0])
        after = after_next


def planned_ids_between(
    *, message_id: int, after_contact_id: int, through_contact_id: int
) -> list[int]:
    """The planned (not yet queued) deliveries of one slice, to hand to dispatch."""
    return list(
        Delivery.objects.filter(
            message_id=message_id,
            status=DeliveryStatus.PLANNED,
            contact_id__gt=after_contact_id,
            contact_id__lte=through_contact_id,
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
