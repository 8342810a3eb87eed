"""Claiming deliveries for sending: the atomic step that makes every send happen at most once.

A chunk task claims only rows still `queued`, due, and whose contact still allows the channel for
the message's purpose, in ONE UPDATE ... RETURNING. Two tasks holding the same ids (a redelivered
message, a sweeper re-enqueue) therefore split them or find nothing left, and a consent revoked
after planning is honoured at claim time because the consent subquery runs inside that statement.

On a channel with quiet hours, rows whose contact is inside them at claim time are not claimed:
they stay `queued` with `not_before` at the end of that contact's window (and the sweeper sends
them then). That costs one read of the chunk's distinct time zones, plus one UPDATE when any of
them is quiet; channels without quiet hours pay nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from contacts.models import Contact, PushSubscription
from contacts.selectors import contacts_consented, push_subscriptions_active
from continuity.sql import sql_any_of
from delivery.models import Delivery
from delivery.quiet_hours import QUIET_HOURS_CODE, QuietRules, quiet_hours_ends, quiet_window
from delivery.states import DeliveryStatus
from delivery.transitions import _events_append, deliveries_transition


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: int
    contact_id: int
    message_id: int
    address: str  # email address, E.164 phone or push endpoint
    merge_fields: dict[str, str]
    push_p256dh: str = ""
    push_auth: str = ""
    push_subscription_id: int | None = None
    timezone: str = ""  # the contact's own, as stored ("" or unknown: the default zone)
    locale: str = ""  # the contact's own, as stored: picks the content variant


def _merge_fields(contact: dict[str, object]) -> dict[str, str]:
    fields = {
        key: str(value)
        for key, value in (contact.get("attributes") or {}).items()  # type: ignore[attr-defined]
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }
    fields.update(
        first_name=str(contact.get("first_name") or ""),
        last_name=str(contact.get("last_name") or ""),
        email=str(contact.get("email") or ""),
    )
    return fields


def deliveries_claim(
    *,
    ids: Iterable[int],
    channel: str,
    purpose: str,
    quiet: QuietRules | None = None,
    claim_id: int | None = None,
) -> list[int]:
    """queued -> sending for the due rows whose contact still allows the channel; returns them.

    The rows point at `claim_id`: the chunk's DeliveryClaim, kept fresh by its worker's heartbeat.

    `quiet` are the quiet hours of the rows' workspace (None: the install's), checked again here
    since a contact's evening may have begun since the rows were planned.

    Rows whose consent or suppression no longer allows the send leave the queue as `suppressed`
    in the same transaction, so nothing is left waiting for a send that must not happen.
    """
    wanted = list(ids)
    if not wanted:
        return []
    now = timezone.now()
    allowed = contacts_consented(channel=channel, purpose=purpose).values("pk")
    allowed_sql, allowed_params = allowed.query.sql_with_params()
    table = connection.ops.quote_name(Delivery._meta.db_table)
    id_match, id_params = sql_any_of("id", wanted)
    # The chunk's own rows are read first (MATERIALIZED: the planner must not start from the
    # contacts side). The consent test is an expression (a bit of Contact.sendable) it has no
    # statistics for; guessing it rare, it once drove the claim from a scan of every consented
    # contact into the queued-rows index, 0.4 s a chunk instead of a few ms.
    sql = (
        f"WITH todo AS MATERIALIZED (SELECT id, contact_id FROM {table} WHERE {id_match} "
        f"AND channel = %s AND status = %s AND (not_before IS NULL OR not_before <= %s)), "
        f"ok AS MATERIALIZED (SELECT todo.id FROM todo WHERE todo.contact_id IN ({allowed_sql})) "
        f"UPDATE {table} SET status = %s, attempt = attempt + 1, sending_at = %s, updated_at = %s, "
        f"claim_id = %s "
        f"WHERE id IN (SELECT id FROM ok) AND status = %s RETURNING id"
    )
    params = [
        *id_params,
        channel,
        DeliveryStatus.QUEUED,
        now,
        *allowed_params,
        DeliveryStatus.SENDING,
        now,
        now,
        claim_id,
        DeliveryStatus.QUEUED,
    ]
    with transaction.atomic():
        if quiet_window(channel=channel, rules=quiet) is not None:
            _quiet_hold(ids=wanted, channel=channel, now=now, quiet=quiet)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            claimed = [row[0] for row in cursor.fetchall()]
        _events_append(ids=claimed, status=DeliveryStatus.SENDING, at=now, detail="claimed")
        # Usually every row was claimed; only the rest need their consent read a second time.
        unclaimed = sorted(set(wanted) - set(claimed))
        if not unclaimed:
            return claimed
        not_allowed = Delivery.objects.filter(
            id__any_of=unclaimed,
            status=DeliveryStatus.QUEUED,
            channel=channel,
        ).exclude(contact_id__in=contacts_consented(channel=channel, purpose=purpose).values("pk"))
        stale = list(not_allowed.values_list("id", flat=True))
        deliveries_transition(
            ids=stale,
            target=DeliveryStatus.SUPPRESSED,
            detail="consent or suppression no longer allows this channel",
            fields={"error_code": "no_consent", "error_text": "consent changed before send"},
            sources=[DeliveryStatus.QUEUED],
        )
    return claimed


def _quiet_hold(
    *, ids: list[int], channel: str, now: datetime, quiet: QuietRules | None
) -> list[int]:
    """Due queued rows whose contact is inside the channel's quiet hours: not_before = its end.

    Their not_before then keeps the claim that follows from taking them. Work is per distinct
    time zone of the chunk: the zones are read, the windows worked out in Python (the same code
    as planning), and one UPDATE joins the rows to (zone, end) pairs.
    """
    table = connection.ops.quote_name(Delivery._meta.db_table)
    contacts = connection.ops.quote_name(Contact._meta.db_table)
    id_match, id_params = sql_any_of("d.id", ids)
    due = (
        f"{id_match} AND d.channel = %s AND d.status = %s "
        f"AND (d.not_before IS NULL OR d.not_before <= %s)"
    )
    due_params = [*id_params, channel, DeliveryStatus.QUEUED, now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT COALESCE(c.timezone, '') FROM {table} d "
            f"JOIN {contacts} c ON c.id = d.contact_id WHERE {due}",
            due_params,
        )
        ends = quiet_hours_ends(
            channel=channel, tzs=[row[0] for row in cursor], now=now, rules=quiet
        )
        if not ends:
            return []
        cursor.execute(
            f"UPDATE {table} d SET not_before = v.until, updated_at = %s, error_code = %s, "
            f"error_text = %s FROM {contacts} c, "
            f"unnest(%s::text[], %s::timestamptz[]) AS v(tz, until) "
            f"WHERE {due} AND c.id = d.contact_id AND COALESCE(c.timezone, '') = v.tz "
            f"RETURNING d.id, v.until",
            [
                now,
                QUIET_HOURS_CODE,
                "inside the contact's quiet hours at send time",
                list(ends),
                list(ends.values()),
                *due_params,
            ],
        )
        held = cursor.fetchall()
    by_end: dict[datetime, list[int]] = defaultdict(list)
    for delivery_id, until in held:
        by_end[until].append(delivery_id)
    for until, held_ids in by_end.items():
        _events_append(
            ids=held_ids,
            status=DeliveryStatus.QUEUED,
            at=now,
            detail=f"deferred for quiet hours until {until:%Y-%m-%d %H:%M} UTC",
        )
    return [delivery_id for delivery_id, _ in held]


def claimed_load(*, ids: list[int], channel: str) -> list[ClaimedDelivery]:
    """What the senders need for claimed rows, in two queries whatever the chunk size."""
    rows = list(
        Delivery.objects.filter(id__any_of=ids, status=DeliveryStatus.SENDING)
        .order_by("id")
        .values(
            "id",
            "message_id",
            "contact_id",
            "contact__email",
            "contact__phone",
            "contact__first_name",
            "contact__last_name",
            "contact__attributes",
            "contact__timezone",
            "contact__locale",
        )
    )
    subscriptions: dict[int, PushSubscription] = {}
    if channel == "push":
        # The contact's newest active subscription: one device per delivery keeps the UNIQUE
        # (message, contact, channel) meaning "one message", and a dead endpoint is replaced by
        # the next newest once 404/410 deactivates it.
        for sub in push_subscriptions_active(contact_ids=[r["contact_id"] for r in rows]):
            if sub.contact_id is not None:
                subscriptions.setdefault(sub.contact_id, sub)
    claimed = []
    for row in rows:
        contact = {
            "first_name": row["contact__first_name"],
            "last_name": row["contact__last_name"],
            "email": row["contact__email"],
            "attributes": row["contact__attributes"],
        }
        subscription = subscriptions.get(row["contact_id"])
        if channel == "email":
            address = row["contact__email"] or ""
        elif channel in ("sms", "whatsapp"):
            address = str(row["contact__phone"] or "")
        else:
            address = subscription.endpoint if subscription else ""
        claimed.append(
            ClaimedDelivery(
                delivery_id=row["id"],
                contact_id=row["contact_id"],
                message_id=row["message_id"],
                address=address,
                merge_fields=_merge_fields(contact),
                push_p256dh=subscription.p256dh if subscription else "",
                push_auth=subscription.auth if subscription else "",
                push_subscription_id=subscription.pk if subscription else None,
                timezone=row["contact__timezone"] or "",
                locale=row["contact__locale"] or "",
            )
        )
    return claimed
