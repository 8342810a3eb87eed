"""Monitor webhook intake: store the receipt, authenticate, normalise, map, apply to windows.

The view only adapts HTTP to this function. The receipt is written first, in its own
autocommit, so even a request that later crashes leaves a trace; its verdict is filled in last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from continuity.inputs import body_storable, json_storable, text_storable
from outages.credentials import source_with_secrets
from outages.mapping import signals_network_resolve
from outages.models import (
    DeliverySeen,
    MonitorSource,
    OpenedBy,
    Verdict,
    WebhookReceipt,
)
from outages.normalisers import KINDS
from outages.normalisers.base import Rejected, Replayed, WebhookRequest
from outages.receipts import receipt_refused_trim
from outages.windows import (
    SignalInput,
    SignalOutcome,
    outage_signal_apply,
    outage_signals_apply,
)

logger = logging.getLogger(__name__)

# Headers worth keeping on a receipt; Authorization is kept as its scheme only.
KEPT_HEADERS = (
    "Content-Type",
    "Content-Length",
    "User-Agent",
    "X-PagerDuty-Signature",
    "X-Webhook-Id",
    "X-Webhook-Subscription",
    "X-Grafana-Alerting-Signature",
    "X-Continuity-Signature",
    "X-Request-Id",
    "X-Forwarded-For",
)


@dataclass
class IntakeResult:
    status_code: int
    verdict: str
    reason: str
    receipt_id: int
    signals: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "receipt": self.receipt_id,
            "verdict": self.verdict,
            "detail": self.reason,
            "signals": self.signals,
        }
        if self.status_code >= 400:
            body["error"] = self.verdict
        return body


def _headers_kept(headers: Mapping[str, str], options: Mapping[str, Any] | None) -> dict[str, str]:
    kept = {name: headers[name][:500] for name in KEPT_HEADERS if name in headers}
    extra = (options or {}).get("timestamp_header")
    if extra and extra in headers:
        kept[str(extra)] = headers[str(extra)][:100]
    if "Authorization" in headers:
        kept["Authorization"] = headers["Authorization"].split(" ", 1)[0][:40] + " [redacted]"
    # json.dumps escapes NUL as \u0000, which jsonb refuses as firmly as text refuses NUL.
    return {k: text_storable(v) for k, v in kept.items()}


def _query_redacted(query: Mapping[str, str]) -> str:
    joined = "&".join(f"{k}={'[redacted]' if k == 'token' else v}" for k, v in query.items())
    return text_storable(joined[:1000])


def _receipt_store(
    *, slug: str, method: str, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
) -> int:
    cap = settings.OUTAGES_RECEIPT_BODY_BYTES
    # A raw INSERT: it runs on every request, and building the statement through the ORM cost
    # more than the database round trip (measured ~1 ms of a ~6 ms request).
    # Only the table name is interpolated, and it comes from model metadata.
    table = WebhookReceipt._meta.db_table
    sql = (
        f"INSERT INTO {table} (slug, method, headers, query, body, "  # noqa: S608
        "body_truncated, size, verdict, reason, signals, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', '[]', %s) RETURNING id"
    )
    # PostgreSQL text cannot hold NUL; the receipt keeps a readable copy, never the raw bytes.
    text, truncated = body_storable(raw=body, cap=cap)
    params: list[Any] = [
        text_storable(slug[:200]),
        text_storable(method[:16]),
        json.dumps(_headers_kept(headers, None)),
        _query_redacted(query),
        text,
        truncated,
        len(body),
        Verdict.RECEIVED,
        timezone.now(),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        raise RuntimeError("receipt insert returned nothing")
    return int(row[0])


_ESCAPED_UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _signals_json(signals: list[dict[str, Any]]) -> str:
    # json.dumps writes NUL and surrogates as \u escapes: only a dump holding one needs the walk
    # that replaces them (a 4,000-alert group pays for one dump, not a walk of every value).
    dumped = json.dumps(signals)
    if _ESCAPED_UNSTORABLE.search(dumped):
        dumped = json.dumps(json_storable(signals))
    return dumped


def _finish(
    receipt: int,
    *,
    status_code: int,
    verdict: str,
    reason: str,
    signals: list[dict[str, Any]] | None = None,
    source: MonitorSource | None = None,
    headers: Mapping[str, str] | None = None,
) -> IntakeResult:
    columns: dict[str, Any] = {
        "status_code": status_code,
        "verdict": verdict,
        # Reasons and signals quote the payload, which may hold what text and jsonb cannot.
        "reason": text_storable(reason[:2000]),
        "signals": _signals_json(signals or []),
    }
    if source is not None:
        columns["source_id"] = source.pk
        if headers is not None and source.options.get("timestamp_header"):
            columns["headers"] = json.dumps(_headers_kept(headers, source.options))
    # Raw for the same reason as the insert; column names are literals from this function.
    assignments = ", ".join(f"{name} = %s" for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {WebhookReceipt._meta.db_table} SET {assignments} WHERE id = %s",  # noqa: S608
            [*columns.values(), receipt],
        )
    receipt_refused_trim(receipt_id=receipt, verdict=verdict)  # refused: keep a small body
    return IntakeResult(status_code, verdict, reason, receipt, signals or [])


def webhook_intake(
    *,
    slug: str,
    method: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    content_type: str,
    too_large: bool = False,
) -> IntakeResult:
    """Handle one request to /hooks/monitors/<slug>/ and say how to answer it."""
    receipt = _receipt_store(slug=slug, method=method, headers=headers, query=query, body=body)
    if method != "POST":
        return _finish(
            receipt, status_code=405, verdict=Verdict.METHOD_NOT_ALLOWED, reason="use POST"
        )
    # A slug PostgreSQL cannot even compare (NUL) names no source: answered before the lookup.
    source, secrets = source_with_secrets(slug=slug) if text_storable(slug) == slug else (None, [])
    if source is None:
        return _finish(
            receipt, status_code=404, verdict=Verdict.NOT_FOUND, reason=f"no active source {slug!r}"
        )
    if too_large:
        limit = settings.OUTAGES_WEBHOOK_MAX_BODY_BYTES
        return _finish(
            receipt,
            status_code=413,
            verdict=Verdict.TOO_LARGE,
            reason=f"body over the {limit} byte limit",
            source=source,
        )
    normaliser = KINDS[source.kind]
    request = WebhookRequest(
        method=method,
        headers=headers,
        query=query,
        body=body,
        content_type=content_type,
        received_at=timezone.now(),
    )
    try:
        delivery_id = normaliser.authenticate(
            request=request, secrets=secrets, options=source.options
        )
        payload = normaliser.parse(request=request)
        normalised = normaliser.normalise(payload=payload, options=source.options)
        return _apply(
            receipt,
            source=source,
            normalised_signals=normalised.signals,
            notes=normalised.notes,
            delivery_id=delivery_id,
            redelivery_is_duplicate=normaliser.redelivery_is_duplicate,
            headers=headers,
        )
    except Rejected as exc:
        return _finish(
            receipt,
            status_code=exc.status_code,
            verdict=exc.verdict,
            reason=exc.reason,
            source=source,
            headers=headers,
        )
    except Exception as exc:
        # Keep the why on the receipt, then let Django answer 500 so the sender retries.
        _finish(receipt, status_code=500, verdict=Verdict.ERROR, reason=repr(exc), source=source)
        raise


def _delivery_first_time(*, source: MonitorSource, delivery_id: str) -> bool:
    # ON CONFLICT DO NOTHING: the unique constraint decides, with no savepoint round trips; a
    # concurrent twin waits on the conflicting row and then sees it taken.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DeliverySeen._meta.db_table} (source_id, delivery_id, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s) ON CONFLICT (source_id, delivery_id) DO NOTHING RETURNING id",
            # The id comes from a header (X-Webhook-Id): stored, like the receipt, NUL-free.
            [source.pk, text_storable(delivery_id), timezone.now()],
        )
        return cursor.fetchone() is not None


INCIDENT_KEY_MAX = 255  # OutageSignal.incident_key


def _incident_key_bounded(key: str) -> str:
    # A sender's key longer than the column keeps a readable prefix plus a digest of the whole,
    # so the same long key always names the same signal and two long keys never merge.
    if len(key) <= INCIDENT_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: INCIDENT_KEY_MAX - len(digest) - 1]}#{digest}"


# Signals applied per transaction. A group bigger than this is applied in several transactions,
# each holding its network's lock only for its own batch, so a 4,000-alert group never blocks
# the other senders of that network for the whole request.
APPLY_BATCH = 500


def _apply(
    receipt: int,
    *,
    source: MonitorSource,
    normalised_signals: list[Any],
    notes: list[str],
    delivery_id: str,
    redelivery_is_duplicate: bool,
    headers: Mapping[str, str],
) -> IntakeResult:
    networks = signals_network_resolve(
        rules=source.mapping_rules,
        default_network=source.default_network,
        items=[(raw.attributes, raw.network) for raw in normalised_signals],
    )
    mapped_signals = [
        (network, _incident_key_bounded(raw.incident_key), raw)
        for network, raw in zip(networks, normalised_signals, strict=True)
    ]
    # One order for every request (network, then key), so two deliveries of one group
    # that list its alerts differently cannot lock two networks in opposite orders.
    mapped_signals.sort(key=lambda item: (item[0] or "", item[1]))
    produced: list[dict[str, Any]] = [
        {"incident_key": key, "status": "firing" if raw.firing else "resolved", "network": network}
        for network, key, raw in mapped_signals
    ]
    # The same alert twice in one request (no sender does it on purpose) is applied once, the
    # last copy winning: a hostile group of one key repeated cannot cost one slow path per copy.
    last = {(network, key): index for index, (network, key, _raw) in enumerate(mapped_signals)}
    copies: dict[int, int] = {}
    batches: list[tuple[str, list[int]]] = []
    for index, (network, key, _raw) in enumerate(mapped_signals):
        if network is None:
            produced[index]["outcome"] = "unmapped"
        elif last[(network, key)] != index:
            copies[index] = last[(network, key)]
        elif batches and batches[-1][0] == network and len(batches[-1][1]) < APPLY_BATCH:
            batches[-1][1].append(index)
        else:
            batches.append((network, [index]))

    def apply(network: str, indexes: list[int]) -> None:
        outcomes = _batch_apply(
            source=source, network=network, items=[mapped_signals[i] for i in indexes]
        )
        for index, outcome in zip(indexes, outcomes, strict=True):
            produced[index]["outcome"] = outcome.action
            produced[index]["window"] = outcome.window_id

    in_one = len(mapped_signals) <= APPLY_BATCH
    with transaction.atomic():
        # Recorded in the same transaction as the (first) window change: a delivery that
        # failed here is not marked seen, so the sender's retry is processed.
        if delivery_id and not _delivery_first_time(source=source, delivery_id=delivery_id[:200]):
            if not redelivery_is_duplicate:
                raise Replayed(f"delivery {delivery_id[:80]!r} was already processed")
            return _finish(
                receipt,
                status_code=200,
                verdict=Verdict.DUPLICATE,
                reason=f"delivery {delivery_id[:80]!r} was already processed: nothing changed",
                source=source,
                headers=headers,
            )
        for network, indexes in batches if in_one else batches[:1]:
            apply(network, indexes)
        if in_one:
            _copies_fill(produced, copies)
            # In the same transaction as the window change: the receipt's verdict never
            # disagrees with what happened, and the request costs one commit less.
            return _verdict(receipt, produced=produced, notes=notes, source=source, headers=headers)
    # A big group: one transaction per batch. Should one fail, the receipt says error and the
    # sender's retry applies the whole group again; every batch already applied repeats as
    # duplicates, which change nothing.
    for network, indexes in batches[1:]:
        with transaction.atomic():
            apply(network, indexes)
    _copies_fill(produced, copies)
    return _verdict(receipt, produced=produced, notes=notes, source=source, headers=headers)


def _copies_fill(produced: list[dict[str, Any]], copies: dict[int, int]) -> None:
    for index, applied in copies.items():
        produced[index]["outcome"] = "duplicate"
        produced[index]["window"] = produced[applied].get("window")


def _batch_apply(
    *, source: MonitorSource, network: str, items: list[tuple[str | None, str, Any]]
) -> list[SignalOutcome]:
    source_ref = f"source:{source.slug}"
    if len(items) == 1:
        # One alert (most requests): the single path, whose repeat check needs no network lock.
        _network, key, raw = items[0]
        return [
            outage_signal_apply(
                network=network,
                firing=raw.firing,
                source_kind=OpenedBy.MONITOR,
                source=source,
                source_ref=source_ref,
                incident_key=key,
                started_at=raw.started_at,
                ended_at=raw.ended_at,
                summary=raw.summary,
                link=raw.link,
                remember=not raw.release_only,
            )
        ]
    return outage_signals_apply(
        network=network,
        source_kind=OpenedBy.MONITOR,
        source=source,
        source_ref=source_ref,
        signals=[
            SignalInput(
                incident_key=key,
                firing=raw.firing,
                started_at=raw.started_at,
                ended_at=raw.ended_at,
                summary=raw.summary,
                link=raw.link,
                remember=not raw.release_only,
            )
            for _network, key, raw in items
        ],
    )


def _verdict(
    receipt: int,
    *,
    produced: list[dict[str, Any]],
    notes: list[str],
    source: MonitorSource,
    headers: Mapping[str, str],
) -> IntakeResult:
    unmapped = sum(1 for entry in produced if entry["outcome"] == "unmapped")
    nothing = sum(1 for entry in produced if entry["outcome"] == "nothing")
    reasons = list(notes)
    if nothing:
        reasons.append(f"{nothing} releases matched no firing alert: nothing to end")
    if unmapped:
        reasons.append(
            f"{unmapped} of {len(produced)} alerts map to no network "
            "(add a mapping rule or a default network)"
        )
    mapped = len(produced) - unmapped - nothing
    if mapped:
        verdict, status = Verdict.ACCEPTED, 200
    elif unmapped:
        verdict, status = Verdict.UNMAPPED, 202
    else:
        verdict, status = Verdict.IGNORED, 202
    return _finish(
        receipt,
        status_code=status,
        verdict=verdict,
        reason="; ".join(reasons) or f"{mapped} signals applied",
        signals=produced,
        source=source,
        headers=headers,
    )
