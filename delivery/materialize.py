"""Planning deliveries for an audience, set-based: one slice of contacts, a few SQL statements.

A slice (contacts with id > cursor, in id order, at most `limit`) gets one row per contact with a
flag per channel: consent granted for the purpose and not suppressed, reachable (an address, a
phone, an active push subscription). From those rows the choice (which channel, if any, each
contact gets) is made once; one INSERT ... SELECT writes it as Delivery rows (ON CONFLICT DO
NOTHING on the UNIQUE key, so a redelivered planning task or a second alert adds nothing) and one
aggregate counts who was left out and why. No contact data ever leaves the database, and memory
does not grow with the audience.

One data-modifying statement per slice reads the contacts once, inserts, and returns every count
(a short one before it fixes the slice's id range and time zones). Without the INSERT it serves the
drill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, F, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from contacts.models import (
    Channel,
    Consent,
    Contact,
    PushSubscription,
    Suppression,
    consent_bit,
)
from delivery.models import Delivery
from delivery.quiet_hours import QuietRules, quiet_hours_ends, quiet_window
from delivery.states import LEFT_STATUSES, DeliveryStatus
from delivery.status import WHATSAPP_NO_FALLBACK_STATUSES
from delivery.variants import (
    MessageLanguages,
    PlanLanguages,
    language_case_sql,
    locale_primary_sql,
)

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
_PLANNABLE = frozenset(Channel.values)


@dataclass(frozen=True)
class PlanSpec:
    """What to plan: the message, its purpose, the ordered fallback channels and the rules.

    `workspace_id` is the message's (the campaign's): deliveries are written with it, and the
    audience is read inside it. `quiet` are that workspace's quiet hours (None: the install's).
    """

    message_id: int
    workspace_id: int
    purpose: str
    channels: Sequence[str]
    mode: str = FIRST_REACHABLE
    frequency_cap: int | None = None
    # Contacts already reached on this channel for this message are left out (WhatsApp: a
    # message that left is not sent again on another channel).
    skip_reached_on: str = ""
    sms_cost_units: int = 1
    quiet: QuietRules | None = None
    # The message's content languages (delivery/variants.py): each planned row is counted under
    # the language its contact will get, and an SMS costs that language's segments. None: the
    # base content alone, counted under no language.
    languages: PlanLanguages | None = None

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
    # {channel: {content language: deliveries}} when the spec has languages.
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    # SMS segments the slice's planned SMS cost, per its rows' content languages.
    sms_segments: int = 0


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model: type[Any]) -> str:
    return _q(model._meta.db_table)


def _flag_sql(
    channel: str, purpose: str, *, alias: str, after_id: int, upper: int, workspace_id: int
) -> tuple[str, list[Any]]:
    """b_<ch> and r_<ch> columns: may be sent to (consented, not suppressed), and reachable.

    Contact.sendable holds "consented, not suppressed, not erased" as one bit per (channel,
    purpose), kept by contacts.consent in the same transaction as every change, so planning reads
    one column instead of probing the consent and suppression tables for every contact. Reach is
    only looked up where the bit is set (CASE evaluates in order); why the others are left out is
    worked out afterwards, for them alone (see _exclusions_sql).
    """
    bit = int(consent_bit(channel, purpose))
    params: list[Any] = []
    if channel == Channel.EMAIL:
        reach = f"({alias}.email IS NOT NULL AND {alias}.email <> '')"
    elif channel in (Channel.SMS, Channel.WHATSAPP):
        reach = f"({alias}.phone IS NOT NULL AND {alias}.phone <> '')"
    elif channel == Channel.PUSH:
        # The slice's id range, repeated here, lets PostgreSQL hash just this slice's
        # subscriptions; without it every slice read all of them (~27 ms a slice at 200,000).
        # The workspace keeps other workspaces' subscriptions in that id range out of the hash.
        reach = (
            f"EXISTS (SELECT 1 FROM {_table(PushSubscription)} p "
            f"WHERE p.contact_id = {alias}.id AND p.active = %s "
            f"AND p.contact_id > %s AND p.contact_id <= %s AND p.workspace_id = %s)"
        )
        params += [True, after_id, upper, workspace_id]
    else:
        raise ValueError(f"cannot plan channel {channel!r}")
    sendable = f"({alias}.sendable & {bit}) <> 0"
    sql = (
        f"CASE WHEN {sendable} THEN 1 ELSE 0 END AS b_{channel}, "
        f"CASE WHEN {sendable} AND {reach} THEN 1 ELSE 0 END AS r_{channel}"
    )
    return sql, params


def _eligible(channel: str, alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return f"({p}b_{channel} = 1 AND {p}r_{channel} = 1)"


def _in_workspace(audience: QuerySet[Contact], spec: PlanSpec) -> QuerySet[Contact]:
    """Only the message's workspace's contacts are ever planned, whatever audience was given:
    a segment or a caller that forgot the workspace cannot reach another client's people. With
    the (workspace, id) index the keyset slices stay range scans of that workspace alone."""
    return audience.filter(workspace_id=spec.workspace_id)


def _keyset(
    audience: QuerySet[Contact], *, spec: PlanSpec, after_id: int, upper: int | None = None
) -> QuerySet[Contact]:
    """The workspace's contacts after `after_id` (up to `upper`), as row comparisons on
    (workspace_id, id). Written as plain `id > after` the bound matched the primary key, which
    PostgreSQL preferred for its perfect heap order and then read every workspace's contacts in
    the range to keep one in ten (0.3-0.4 s a slice at 1,000,000 contacts over 10 workspaces);
    the row comparison can only be an index range of contact_workspace_keyset."""
    table = _table(Contact)
    bounds = [f"({table}.workspace_id, {table}.id) > (%s, %s)"]
    params: list[Any] = [spec.workspace_id, after_id]
    if upper is not None:
        bounds.append(f"({table}.workspace_id, {table}.id) <= (%s, %s)")
        params += [spec.workspace_id, upper]
    # Only the quoted table name is interpolated; the values travel as parameters.
    bound = RawSQL(" AND ".join(bounds), params, output_field=BooleanField())  # noqa: S611
    return audience.filter(bound)


def _slice_upper(
    *, spec: PlanSpec, audience: QuerySet[Contact], after_id: int, limit: int
) -> int | None:
    """The id of the slice's last contact (None: nothing left)."""
    # The slice's upper bound first, then a plain id range: with the LIMIT inside the IN list the
    # planner scanned every contact once per slice (0.4 s a slice at 1,000,000 contacts).
    after = _keyset(audience, spec=spec, after_id=after_id)
    upper = (after.order_by("pk").values_list("pk", flat=True)[limit - 1 :]).first()
    if upper is None:
        upper = after.order_by("-pk").values_list("pk", flat=True).first()
    return upper


def _slice_rows_sql(
    *, spec: PlanSpec, audience: QuerySet[Contact], after_id: int, upper: int, now: datetime
) -> tuple[str, list[Any]]:
    """A SELECT of the slice's planning rows: id, tz, b_/r_<channel>, recent, reached, erased."""
    audience = _keyset(audience, spec=spec, after_id=after_id, upper=upper).order_by()
    query = audience.query
    # An audience that filters contacts alone (every segment does: tags and attributes are
    # EXISTS probes) lends its WHERE to the slice, so each contact is read once. Anything
    # else (a join, DISTINCT) is matched by id instead, at the cost of a second read.
    # A filter on workspace_id leaves an unused (refcount 0) alias of the workspace table behind:
    # only the aliases the query still uses count.
    used = [alias for alias in query.alias_map if query.alias_refcount.get(alias)]
    plain = len(used) == 1 and not query.distinct and not query.group_by
    alias = _table(Contact) if plain else "c"
    columns, params = _slice_columns(
        spec=spec, alias=alias, after_id=after_id, upper=upper, now=now
    )
    if plain:
        where_sql, where_params = query.get_compiler(connection=connection).compile(query.where)
        return (
            f"SELECT {columns} FROM {_table(Contact)} WHERE {where_sql}",
            [*params, *where_params],
        )
    ids_sql, ids_params = audience.values("pk").query.sql_with_params()
    return (
        f"SELECT {columns} FROM {_table(Contact)} c "
        f"WHERE (c.workspace_id, c.id) > (%s, %s) AND (c.workspace_id, c.id) <= (%s, %s) "
        f"AND c.id IN ({ids_sql})",
        [*params, spec.workspace_id, after_id, spec.workspace_id, upper, *ids_params],
    )


def _slice_columns(
    *, spec: PlanSpec, alias: str, after_id: int, upper: int, now: datetime
) -> tuple[str, list[Any]]:
    flags: list[str] = []
    params: list[Any] = []
    for channel in spec.channels:
        sql, flag_params = _flag_sql(
            channel,
            spec.purpose,
            alias=alias,
            after_id=after_id,
            upper=upper,
            workspace_id=spec.workspace_id,
        )
        flags.append(sql)
        params += flag_params
    recent_sql = "0"
    if spec.frequency_cap is not None:
        recent_sql = (
            f"(SELECT COUNT(*) FROM {_table(Delivery)} d WHERE d.contact_id = {alias}.id "
            f"AND d.created_at >= %s AND d.message_id <> %s AND d.status NOT IN (%s, %s, %s))"
        )
        params += [
            now - timedelta(days=1),
            spec.message_id,
            DeliveryStatus.CANCELLED,
            DeliveryStatus.SUPPRESSED,
            DeliveryStatus.FAILED,
        ]
    reached_sql = "0"
    if spec.skip_reached_on:
        # WhatsApp (the only channel skipped this way) counts delivered, read and still
        # settling; an undelivered or failed message leaves its contact to the fallback.
        left = sorted(
            WHATSAPP_NO_FALLBACK_STATUSES
            if spec.skip_reached_on == Channel.WHATSAPP
            else LEFT_STATUSES
        )
        reached_sql = (
            f"CASE WHEN EXISTS (SELECT 1 FROM {_table(Delivery)} w "
            f"WHERE w.contact_id = {alias}.id AND w.message_id = %s AND w.channel = %s "
            f"AND w.status IN ({', '.join(['%s'] * len(left))})) THEN 1 ELSE 0 END"
        )
        params += [spec.message_id, spec.skip_reached_on, *left]
    sql = (
        f"{alias}.id AS id, COALESCE({alias}.timezone, '') AS tz, "
        f"{locale_primary_sql(f'{alias}.locale')} AS lang, {', '.join(flags)}, "
        f"{recent_sql} AS recent, {reached_sql} AS reached, "
        f"CASE WHEN {alias}.erased_at IS NULL THEN 0 ELSE 1 END AS erased"
    )
    return sql, params


def _budgeted(spec: PlanSpec, allowance: tuple[int, int] | None) -> bool:
    return allowance is not None and Channel.SMS in spec.channels


def _open(spec: PlanSpec) -> str:
    """Not left out before any channel is looked at: not reached already, under the cap."""
    if spec.frequency_cap:
        return f"(recent < {int(spec.frequency_cap)} AND reached = 0)"
    return "(reached = 0)"


def _takes(spec: PlanSpec, *, budgeted: bool) -> dict[str, str]:
    """Per channel, whether a decided row may be planned on it (its eligibility, and for SMS
    under a budget, its place in the budget)."""
    takes = {ch: _eligible(ch) for ch in spec.channels}
    if budgeted:
        takes[Channel.SMS] = f"({takes[Channel.SMS]} AND sms_ok = 1)"
    return takes


def _decided_sql(*, spec: PlanSpec, source: str, allowance: tuple[int, int] | None) -> str:
    """A SELECT of every row of `source` (the slice's planning rows) with the decision added:
    first_channel, the first channel in order this contact may be planned on (NULL: none, the
    contact is left out), and under an SMS budget sms_ok, whether the budget reaches them.

    In "all" mode every channel a contact may take is planned; first_channel then only tells
    who gets something. The insert and every count below read these rows.
    """
    budgeted = _budgeted(spec, allowance)
    takes = _takes(spec, budgeted=budgeted)
    whens = " ".join(f"WHEN {takes[ch]} THEN '{ch}'" for ch in spec.channels)
    first = f"CASE WHEN {_open(spec)} THEN CASE {whens} END END AS first_channel"
    if not budgeted or allowance is None:
        return f"SELECT s.*, {first} FROM {source} s"
    allow_only, allow_alt = allowance
    others = " OR ".join(_eligible(ch) for ch in spec.channels if ch != Channel.SMS) or "1 = 0"
    # Contacts with no other channel come first: they are ranked apart and draw on the share of
    # the budget reserved for them.
    wanting = (
        f"SELECT id, has_alt, ROW_NUMBER() OVER (PARTITION BY has_alt ORDER BY id) AS rn "
        f"FROM (SELECT id, CASE WHEN {others} THEN 1 ELSE 0 END AS has_alt FROM {source} "
        f"WHERE {_open(spec)} AND {_eligible(Channel.SMS)}) wanting"
    )
    ranked = (
        f"SELECT s0.*, CASE WHEN (w.has_alt = 0 AND w.rn <= {int(allow_only)}) "
        f"OR (w.has_alt = 1 AND w.rn <= {int(allow_alt)}) THEN 1 ELSE 0 END AS sms_ok "
        f"FROM {source} s0 LEFT JOIN ({wanting}) w ON w.id = s0.id"
    )
    return f"SELECT s.*, {first} FROM ({ranked}) s"


def _chosen_sql(
    *,
    spec: PlanSpec,
    decided: str,
    allowance: tuple[int, int] | None,
    tzs: list[str],
    now: datetime,
) -> tuple[str, list[Any]]:
    """A SELECT of (id, channel, not_before): the deliveries to plan from the decided rows.

    Quiet hours are worked out here in Python, per time zone present in the slice, and reach SQL
    as one CASE branch per (channel, zone) that is quiet now.
    """
    if spec.mode == ALL_CHANNELS:
        takes = _takes(spec, budgeted=_budgeted(spec, allowance))
        picked = " UNION ALL ".join(
            f"SELECT id, tz, lang, '{ch}' AS channel FROM {decided} "
            f"WHERE {_open(spec)} AND {takes[ch]}"
            for ch in spec.channels
        )
    else:
        picked = (
            f"SELECT id, tz, lang, first_channel AS channel FROM {decided} "
            "WHERE first_channel IS NOT NULL"
        )
    cases: list[str] = []
    params: list[Any] = []
    for ch in spec.channels:
        ends = quiet_hours_ends(channel=ch, tzs=tzs, now=now, rules=spec.quiet)
        for tz_name, opening in ends.items():
            cases.append("WHEN chosen.channel = %s AND chosen.tz = %s THEN %s")
            params += [ch, tz_name, opening]
    not_before = f"CASE {' '.join(cases)} ELSE NULL END" if cases else "NULL"
    content_lang, lang_params = _content_language_sql(spec)
    sql = (
        f"SELECT chosen.id AS id, chosen.channel AS channel, "
        f"CAST(({not_before}) AS TIMESTAMP WITH TIME ZONE) AS not_before, "
        f"{content_lang} AS content_lang FROM ({picked}) chosen"
    )
    return sql, [*params, *lang_params]


def _content_language_sql(spec: PlanSpec) -> tuple[str, list[Any]]:
    """The content language each chosen row's contact gets on its channel (the rule of
    delivery/variants.py, as SQL over the contact's locale)."""
    if spec.languages is None:
        return "CAST('' AS TEXT)", []
    whens: list[str] = []
    params: list[Any] = []
    for ch in spec.channels:
        case, case_params = language_case_sql(
            primary="chosen.lang", channel=ch, languages=spec.languages
        )
        whens.append(f"WHEN %s THEN {case}")
        params += [ch, *case_params]
    return f"CAST(CASE chosen.channel {' '.join(whens)} END AS TEXT)", params


def _insert_sql(*, spec: PlanSpec, chosen: str, now: datetime) -> tuple[str, list[Any]]:
    """Write the chosen rows as planned deliveries; rows that exist already are left alone."""
    sms_cost = str(int(spec.sms_cost_units))
    cost_params: list[Any] = []
    if spec.languages is not None and spec.languages.sms_cost:
        whens = " ".join("WHEN %s THEN %s" for _ in spec.languages.sms_cost)
        sms_cost = f"CASE content_lang {whens} ELSE {int(spec.sms_cost_units)} END"
        for language, units in sorted(spec.languages.sms_cost.items()):
            cost_params += [language, int(units)]
    cost = f"CASE WHEN channel = '{Channel.SMS}' THEN {sms_cost} ELSE 1 END"
    sql = (
        f"INSERT INTO {_table(Delivery)} (workspace_id, message_id, contact_id, channel, status, "
        "attempt, provider, provider_message_id, error_code, error_text, cost_units, not_before, "
        "created_at, updated_at) "
        f"SELECT %s, %s, id, channel, %s, 0, '', '', '', '', {cost}, not_before, %s, %s "
        f"FROM {chosen} ON CONFLICT (message_id, contact_id, channel) DO NOTHING"
    )
    return sql, [spec.workspace_id, spec.message_id, DeliveryStatus.PLANNED, *cost_params, now, now]


def _planned_sql(*, chosen: str) -> str:
    """("channel:content language", deliveries, of which delayed by quiet hours): the same pass
    over the chosen rows counts both, so labelling languages costs no extra read of them."""
    return (
        "SELECT channel || ':' || content_lang AS channel_lang, COUNT(*) AS n, "
        "SUM(CASE WHEN not_before IS NOT NULL THEN 1 ELSE 0 END) AS delayed "
        f"FROM {chosen} GROUP BY channel, content_lang"
    )


def _exclusions_sql(
    *, spec: PlanSpec, decided: str, after_id: int, upper: int
) -> tuple[str, list[Any]]:
    """(reason, contacts) for the slice's contacts left out: the first matching reason."""
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
    # Only contacts without any sendable bit get this far. Contact.sendable is exactly "granted,
    # not suppressed, not erased", so a granted consent among them means an active suppression
    # or an erased contact: the consent table is probed for those few alone, not for everyone
    # who never consented (~10 ms a slice when that is a third of the audience).
    suppressed = (
        f"(erased = 1 OR EXISTS (SELECT 1 FROM {_table(Suppression)} x "
        f"WHERE x.contact_id = t.id AND x.active = %s AND x.channel IN ({marks}) "
        f"AND x.contact_id > %s AND x.contact_id <= %s AND x.workspace_id = %s)) "
        f"AND EXISTS (SELECT 1 FROM {_table(Consent)} k WHERE k.contact_id = t.id "
        f"AND k.purpose = %s AND k.state = %s AND k.channel IN ({marks}))"
    )
    sql = (
        f"SELECT reason, COUNT(*) AS n FROM (SELECT CASE WHEN reached = 1 THEN 'already_reached' "
        f"{cap_case}"
        f"{sms_budget}"
        f"WHEN {sendable_somewhere} THEN 'unreachable' "
        f"WHEN {suppressed} THEN 'suppressed' "
        f"ELSE 'no_consent' END AS reason FROM {decided} t "
        f"WHERE t.first_channel IS NULL) excluded GROUP BY reason"
    )
    params = [
        True,
        *channels,
        after_id,
        upper,
        spec.workspace_id,
        spec.purpose,
        "granted",
        *channels,
    ]
    return sql, params


def _sms_split_sql(*, spec: PlanSpec, decided: str, allowance: tuple[int, int] | None) -> str:
    """(SMS deliveries to contacts with another eligible channel, all SMS deliveries)."""
    if spec.mode == ALL_CHANNELS:
        takes = _takes(spec, budgeted=_budgeted(spec, allowance))
        on_sms = f"{_open(spec)} AND {takes[Channel.SMS]}"
    else:
        on_sms = f"first_channel = '{Channel.SMS}'"
    others = " OR ".join(_eligible(ch) for ch in spec.channels if ch != Channel.SMS) or "1 = 0"
    return (
        f"SELECT COALESCE(SUM(CASE WHEN {others} THEN 1 ELSE 0 END), 0) AS with_alt, "
        f"COUNT(*) AS total FROM {decided} WHERE {on_sms}"
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
    with transaction.atomic():
        return _plan_slice(
            spec=spec,
            audience=_in_workspace(audience, spec),
            after_id=after_contact_id,
            limit=limit,
            allowance=sms_allowance,
            write=write,
            now=timezone.now(),
        )


def _plan_slice(
    *,
    spec: PlanSpec,
    audience: QuerySet[Contact],
    after_id: int,
    limit: int,
    allowance: tuple[int, int] | None,
    write: bool,
    now: datetime,
) -> SliceResult:
    """The slice's bounds and time zones, then one statement that reads the slice
    once, decides, inserts the choice and returns every count. A data-modifying CTE runs to
    completion whether or not the outer query reads it, and all parts see the same snapshot."""
    result = SliceResult()
    window = (
        _keyset(audience, spec=spec, after_id=after_id)
        .order_by("pk")
        .values(slice_id=F("pk"), slice_tz=F("timezone"))[:limit]
    )
    window_sql, window_params = window.query.sql_with_params()
    with connection.cursor() as cursor:
        # The statement's estimated cost passes jit_above_cost, and compiling it took longer
        # (~0.3 s) than running it (~0.1 s) for every slice. SET LOCAL lasts to the end of the
        # transaction, which is the caller's when it holds one: no harm to short statements.
        # (A larger work_mem is no help: it lets the planner hash the whole consent table.)
        cursor.execute("SET LOCAL jit = off")
        # The quiet-hours CASE needs the slice's time zones before the statement is built;
        # collecting them costs little here, where the slice's rows are read anyway (and
        # nothing when no planned channel has quiet hours in the workspace).
        quiet = any(quiet_window(channel=ch, rules=spec.quiet) for ch in spec.channels)
        zones = "ARRAY_AGG(DISTINCT COALESCE(w.slice_tz, ''))" if quiet else "ARRAY[]::text[]"
        cursor.execute(
            f"SELECT COUNT(*), MAX(w.slice_id), {zones} FROM ({window_sql}) w",
            window_params,
        )
        count, upper, tzs = cursor.fetchone()
        if not count:
            return result
        result.contacts, result.last_contact_id = int(count), int(upper)
        rows_sql, params = _slice_rows_sql(
            spec=spec, audience=audience, after_id=after_id, upper=upper, now=now
        )
        chosen_sql, chosen_params = _chosen_sql(
            spec=spec, decided="plan_decided", allowance=allowance, tzs=list(tzs), now=now
        )
        # OFFSET 0 keeps the slice a subquery of its own, so each flag is worked out once per
        # contact; inlined, the push probe ran again inside the channel choice (~5 ms a slice).
        # The decided rows are kept (MATERIALIZED) since four parts read them; the chosen ones
        # are cheaper to derive twice than to store.
        ctes = [
            f"plan_slice AS ({rows_sql} OFFSET 0)",
            "plan_decided AS MATERIALIZED "
            f"({_decided_sql(spec=spec, source='plan_slice', allowance=allowance)})",
            f"plan_chosen AS NOT MATERIALIZED ({chosen_sql})",
        ]
        params += chosen_params
        if write:
            insert_sql, insert_params = _insert_sql(spec=spec, chosen="plan_chosen", now=now)
            ctes.append(f"plan_insert AS ({insert_sql})")
            params += insert_params
        exclusions_sql, exclusions_params = _exclusions_sql(
            spec=spec, decided="plan_decided", after_id=after_id, upper=upper
        )
        counts = [
            f"SELECT 'planned', channel_lang, n, delayed "
            f"FROM ({_planned_sql(chosen='plan_chosen')}) p",
            f"SELECT 'excluded', reason, n, 0 FROM ({exclusions_sql}) e",
        ]
        params += exclusions_params
        if Channel.SMS in spec.channels:
            split_sql = _sms_split_sql(spec=spec, decided="plan_decided", allowance=allowance)
            counts.append(f"SELECT 'sms', '', with_alt, total FROM ({split_sql}) s")
        cursor.execute(f"WITH {', '.join(ctes)} {' UNION ALL '.join(counts)}", params)
        for kind, name, count_a, count_b in cursor.fetchall():
            if kind == "planned":
                channel, _, language = name.partition(":")
                result.planned[channel] = result.planned.get(channel, 0) + int(count_a)
                result.delayed_quiet_hours += int(count_b or 0)
                if spec.languages is not None:
                    result.languages.setdefault(channel, {})[language] = int(count_a)
            elif kind == "excluded":
                result.exclusions[name] = int(count_a)
            else:
                result.sms_alt_planned = int(count_a)
                result.sms_only_planned = int(count_b) - int(count_a)
    result.sms_segments = _sms_segments(spec, result)
    return result


def _sms_segments(spec: PlanSpec, result: SliceResult) -> int:
    """The slice's planned SMS in segments: per content language when known, else each at the
    spec's cost."""
    costs = spec.languages.sms_cost if spec.languages is not None else {}
    by_language = result.languages.get(Channel.SMS)
    if not by_language:
        return result.planned.get(Channel.SMS, 0) * spec.sms_cost_units
    return sum(n * int(costs.get(lang, spec.sms_cost_units)) for lang, n in by_language.items())


def sms_only_count(*, spec: PlanSpec, audience: QuerySet[Contact], limit: int) -> int:
    """Contacts in the audience whose only eligible plan channel is SMS (the budget's first
    claimants), counted slice by slice so memory stays flat."""
    if Channel.SMS not in spec.channels:
        return 0
    audience = _in_workspace(audience, spec)
    total, after = 0, 0
    others = " OR ".join(_eligible(ch) for ch in spec.channels if ch != Channel.SMS) or "1 = 0"
    while True:
        upper = _slice_upper(spec=spec, audience=audience, after_id=after, limit=limit)
        if upper is None:
            return total
        rows_sql, params = _slice_rows_sql(
            spec=spec, audience=audience, after_id=after, upper=upper, now=timezone.now()
        )
        # The slice's rows stay a subquery the planner flattens: only the flags this count
        # reads are worked out (the frequency cap's count of recent deliveries is not).
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM ({rows_sql}) s WHERE {_eligible(Channel.SMS)} "
                f"AND NOT ({others}) AND reached = 0",
                params,
            )
            total += int(cursor.fetchone()[0])
        after = upper


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


def deliveries_language_counts(
    *, message_id: int, workspace_id: int, channels: Sequence[str], languages: MessageLanguages
) -> dict[str, dict[str, dict[str, int]]]:
    """{channel: {content language: {status: deliveries}}} for one message, in one grouped
    query: each row under the language its contact gets now (delivery/variants.py)."""
    unknown = [ch for ch in channels if ch not in _PLANNABLE]
    if unknown or not channels:
        return {}
    whens: list[str] = []
    params: list[Any] = []
    for channel in channels:
        case, case_params = language_case_sql(
            primary=locale_primary_sql("c.locale"), channel=channel, languages=languages
        )
        whens.append(f"WHEN %s THEN {case}")
        params += [channel, *case_params]
    sql = (
        f"SELECT d.channel, CAST(CASE d.channel {' '.join(whens)} END AS TEXT) AS lang, "
        f"d.status, COUNT(*) FROM {_table(Delivery)} d JOIN {_table(Contact)} c "
        "ON c.id = d.contact_id WHERE d.message_id = %s AND d.workspace_id = %s GROUP BY 1, 2, 3"
    )
    params += [message_id, workspace_id]
    counts: dict[str, dict[str, dict[str, int]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for channel, language, status, n in cursor.fetchall():
            counts.setdefault(channel, {}).setdefault(language, {})[status] = int(n)
    return counts
