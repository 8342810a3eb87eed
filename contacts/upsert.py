"""Bulk contact upsert shared by the API, the admin import and `import_contacts`.

Rows are parsed one by one (so each error names its row and field), then written per batch in a
few set-based statements: one lookup of existing contacts by every identifier in the batch, one
COPY for new contacts, one UPDATE ... FROM unnest(...) for changed ones, one pass for tags and one
for consent (through contacts.consent). Matching is by external_id, then email, then phone, inside
one workspace: identifiers are unique per workspace, so two client businesses may both hold the
same person and never see each other's row.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from contacts.attribute_keys import attribute_key_problem
from contacts.consent import ConsentChange, Evidence, consents_apply_bulk, sendable_refresh
from contacts.errors import ConsentEvidenceMissing
from contacts.models import (
    CHANNELS,
    CONSENT_SOURCES,
    CONSENT_STATES,
    PURPOSES,
    Channel,
    ConsentSource,
    ConsentState,
    Contact,
    ContactTag,
    Purpose,
    Tag,
    consent_bit,
)
from contacts.normalize import (
    FieldError,
    email_normalise,
    locale_normalise,
    phone_normalise,
    timezone_normalise,
)
from contacts.privacy import erased_rows_refused, erased_values_refuse
from continuity.inputs import json_parse
from continuity.models import Workspace


def _workspace_id(workspace: Workspace | int) -> int:
    return workspace if isinstance(workspace, int) else workspace.pk


TEXT_FIELDS = {"first_name": 150, "last_name": 150, "external_id": 200}
CONTACT_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "attributes",
)
IDENTIFIERS = ("external_id", "email", "phone")
# CSV spelling of consent: consent_<channel>_<purpose> = granted | revoked | pending (or yes/no).
CONSENT_COLUMNS = {
    f"consent_{channel}_{purpose}": (channel, purpose)
    for channel in Channel.values
    for purpose in Purpose.values
}
EVIDENCE_COLUMNS = (
    "consent_source",
    "consent_text_version",
    "consent_occurred_at",
    "consent_ip",
    "consent_user_agent",
)
STATE_WORDS = {
    "granted": ConsentState.GRANTED,
    "grant": ConsentState.GRANTED,
    "yes": ConsentState.GRANTED,
    "y": ConsentState.GRANTED,
    "true": ConsentState.GRANTED,
    "1": ConsentState.GRANTED,
    "revoked": ConsentState.REVOKED,
    "revoke": ConsentState.REVOKED,
    "no": ConsentState.REVOKED,
    "n": ConsentState.REVOKED,
    "false": ConsentState.REVOKED,
    "0": ConsentState.REVOKED,
    "pending": ConsentState.PENDING,
}
# Not in CONTACT_FIELDS (the admin's form lists those and adds it itself): a date, parsed apart.
CUSTOMER_SINCE = "customer_since"
KNOWN_COLUMNS = (
    set(CONTACT_FIELDS)
    | {"tags", "consents", CUSTOMER_SINCE}
    | set(CONSENT_COLUMNS)
    | set(EVIDENCE_COLUMNS)
)
# The date it is now somewhere on Earth (UTC+14): a customer relationship that began "today" in
# Kiribati is not refused as future because the server's clock is still on yesterday.
_EARLIEST_OFFSET = timedelta(hours=14)


@dataclass
class RowError:
    row: int
    field: str
    message: str


@dataclass
class ParsedRow:
    row: int
    values: dict[str, Any]
    tags: list[str] | None = None
    consents: list[tuple[str, str, str, Evidence]] = field(default_factory=list)

    def identifier_keys(self) -> list[str]:
        """Identifier keys of this row, used for duplicate detection within one file."""
        return [f"{name}:{self.values[name]}" for name in IDENTIFIERS if self.values.get(name)]


@dataclass
class RowResult:
    row: int
    status: str  # created | updated | unchanged | error
    id: int | None = None
    errors: list[RowError] = field(default_factory=list)


@dataclass
class UpsertReport:
    results: list[RowResult] = field(default_factory=list)
    consent_changes: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def errors(self) -> list[RowError]:
        return [e for r in self.results for e in r.errors]

    def summary(self) -> dict[str, int]:
        return {
            "created": self.count("created"),
            "updated": self.count("updated"),
            "unchanged": self.count("unchanged"),
            "errors": self.count("error"),
            "consent_changes": self.consent_changes,
        }


class RowInvalid(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(value).strip()


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        names = [_text(v) for v in value]
    else:
        text = _text(value)
        for sep in (";", "|"):
            text = text.replace(sep, ",")
        names = [n.strip() for n in text.split(",")]
    return sorted({n[:100] for n in names if n})


_EVIDENCE_KEYS = ("source", "occurred_at", "ip", "user_agent", "text_version")


def _evidence(raw: Mapping[str, Any], default: Evidence | None, *, prefix: str) -> Evidence:
    if default is not None and not any(raw.get(f"{prefix}{k}") for k in _EVIDENCE_KEYS):
        # The common import case: the file itself is the evidence, shared by every row.
        return default
    source = _text(raw.get(f"{prefix}source")) or (default.source if default else "")
    if not source:
        raise FieldError(
            f"{prefix}source",
            _("a consent grant needs an evidence source (one of %(sources)s)")
            % {"sources": ", ".join(ConsentSource.values)},
        )
    if source not in CONSENT_SOURCES:
        raise FieldError(
            f"{prefix}source", _("unknown evidence source %(value)s") % {"value": repr(source)}
        )
    occurred: datetime | None = None
    occurred_raw = _text(raw.get(f"{prefix}occurred_at"))
    if occurred_raw:
        occurred = parse_datetime(occurred_raw)
        if occurred is None:
            raise FieldError(
                f"{prefix}occurred_at",
                _("%(value)s is not an ISO 8601 time") % {"value": repr(occurred_raw)},
            )
        if timezone.is_naive(occurred):
            occurred = timezone.make_aware(occurred, UTC)
        if occurred > timezone.now():
            raise FieldError(f"{prefix}occurred_at", _("consent cannot be given in the future"))
    ip = _text(raw.get(f"{prefix}ip")) or (default.ip if default else None)
    if not _ip_ok(ip):
        raise FieldError(f"{prefix}ip", _("%(value)s is not an IP address") % {"value": repr(ip)})
    return Evidence(
        source=source,
        occurred_at=occurred or (default.occurred_at if default else None),
        ip=ip,
        user_agent=_text(raw.get(f"{prefix}user_agent")) or (default.user_agent if default else ""),
        consent_text_version=_text(raw.get(f"{prefix}text_version"))
        or _text(raw.get(f"{prefix}consent_text_version"))
        or (default.consent_text_version if default else ""),
        recorded_by=default.recorded_by if default else "",
        source_detail=default.source_detail if default else "",
    )


def _ip_ok(ip: str | None) -> bool:
    if not ip:
        return True
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


_NORMALISERS: tuple[tuple[str, Any], ...] = (
    ("email", email_normalise),
    ("phone", phone_normalise),
    ("timezone", timezone_normalise),
    # A bad tag is the row's error; `it_IT` is stored as `it-IT` (contacts.language reads both,
    # but one spelling keeps filters, exports and reports counting one language once).
    ("locale", locale_normalise),
)


def _parse_fields(
    raw: Mapping[str, Any], *, row: int, blank_means_unchanged: bool, errors: list[RowError]
) -> dict[str, Any]:
    # Runs once per imported row: texts are read once, and a missing or (for files) blank
    # column is skipped before any work.
    texts: dict[str, str] = {}
    for name in (*TEXT_FIELDS, "email", "phone", "timezone", "locale", "tags", "attributes"):
        if name in raw:
            value = raw[name]
            text = value.strip() if isinstance(value, str) else _text(value)
            if text or not blank_means_unchanged:
                texts[name] = text
    values: dict[str, Any] = {}
    for name, limit in TEXT_FIELDS.items():
        if name in texts:
            text = texts[name]
            if len(text) > limit:
                errors.append(
                    RowError(row, name, _("longer than %(count)s characters") % {"count": limit})
                )
            values[name] = text or (None if name == "external_id" else "")
    for name, normalise in _NORMALISERS:
        if name in texts:
            try:
                values[name] = normalise(texts[name])
            except FieldError as exc:
                errors.append(RowError(row, exc.field, exc.message))
    attributes = _parse_attributes(raw, row=row, provided="attributes" in texts, errors=errors)
    if attributes is not None:
        values["attributes"] = attributes
    if "tags" in texts:
        values["tags"] = _tags(raw["tags"])
    return values


def customer_since_parse(value: Any) -> date | None:
    """The customer relationship's start (an ISO 8601 date; a spreadsheet's date cell too), or
    None for blank (clears it); FieldError for anything else or a date still to come."""
    if isinstance(value, datetime):  # a spreadsheet cell; datetime is also a date: test first
        value = value.date()
    if isinstance(value, date):
        since = value
    elif value is None or isinstance(value, str):
        text = (value or "").strip()
        if not text:
            return None
        parsed: date | None
        try:
            parsed = parse_date(text[:40])
            if parsed is None:
                moment = parse_datetime(text[:40])
                parsed = moment.date() if moment is not None else None
        except ValueError:  # well-formed but impossible, such as 2025-02-30
            parsed = None
        if parsed is None:
            raise FieldError(
                CUSTOMER_SINCE,
                _("%(value)s is not a date (YYYY-MM-DD)") % {"value": repr(text[:40])},
            )
        since = parsed
    else:
        raise FieldError(CUSTOMER_SINCE, _("must be a date (YYYY-MM-DD) or empty"))
    if since > (timezone.now() + _EARLIEST_OFFSET).date():
        raise FieldError(
            CUSTOMER_SINCE,
            _(
                "%(value)s is in the future: a customer relationship that has not begun yet "
                "cannot justify a soft opt-in"
            )
            % {"value": since.isoformat()},
        )
    return since


def _parse_customer_since(
    raw: Mapping[str, Any], *, row: int, blank_means_unchanged: bool, errors: list[RowError]
) -> dict[str, Any]:
    if CUSTOMER_SINCE not in raw:
        return {}
    value = raw[CUSTOMER_SINCE]
    if blank_means_unchanged and (value is None or (isinstance(value, str) and not value.strip())):
        return {}
    try:
        return {CUSTOMER_SINCE: customer_since_parse(value)}
    except FieldError as exc:
        errors.append(RowError(row, exc.field, exc.message))
        return {}


def _parse_attributes(
    raw: Mapping[str, Any], *, row: int, provided: bool, errors: list[RowError]
) -> dict[str, Any] | None:
    attributes: dict[str, Any] = {}
    if provided:
        value = raw["attributes"]
        if isinstance(value, str):
            try:
                # Not json.loads: a "\u0000" escape or NaN parses, then jsonb refuses it (500).
                value = json_parse(raw=value, nul="reject", where="attributes")
            except ValueError:  # InputRejected included
                errors.append(RowError(row, "attributes", _("not valid JSON")))
                value = {}
        if isinstance(value, dict):
            attributes.update(value)
        else:
            errors.append(RowError(row, "attributes", _("must be an object of name: value")))
    # CSV spelling of attributes: one attr_<name> column each.
    for key, value in raw.items():
        if isinstance(key, str) and key.startswith("attr_") and _text(value) != "":
            attributes[key[5:]] = value
    # Only names a segment rule and a template can address (contacts.attribute_keys).
    for key in attributes:
        if (problem := attribute_key_problem(key)) is not None:
            errors.append(RowError(row, "attributes", problem))
    return attributes if attributes or provided else None


def _parse_consent_columns(
    raw: Mapping[str, Any], *, row: int, default: Evidence | None, errors: list[RowError]
) -> list[tuple[str, str, str, Evidence]]:
    consents: list[tuple[str, str, str, Evidence]] = []
    for column, (channel, purpose) in CONSENT_COLUMNS.items():
        value = raw.get(column)
        if value is None or value == "":
            continue  # most columns of most rows: skipped before any text work
        word = _text(value).lower()
        if not word:
            continue
        state = STATE_WORDS.get(word)
        if state is None:
            errors.append(
                RowError(
                    row,
                    column,
                    _("%(value)s is not one of granted, revoked, pending") % {"value": repr(word)},
                )
            )
            continue
        try:
            evidence = _evidence(raw, default, prefix="consent_")
        except FieldError as exc:
            errors.append(RowError(row, exc.field, exc.message))
            continue
        consents.append((channel, purpose, state, evidence))
    return consents


def _parse_consent_list(
    value: Any, *, row: int, default: Evidence | None, errors: list[RowError]
) -> list[tuple[str, str, str, Evidence]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        errors.append(RowError(row, "consents", _("must be a list of consent objects")))
        return []
    consents: list[tuple[str, str, str, Evidence]] = []
    for index, item in enumerate(value):
        where = f"consents[{index}]"
        if not isinstance(item, dict):
            errors.append(RowError(row, where, _("must be an object")))
            continue
        channel, purpose = _text(item.get("channel")), _text(item.get("purpose"))
        state = _text(item.get("state")) or ConsentState.GRANTED.value
        problem = (
            ("channel", f"unknown channel {channel!r}")
            if channel not in CHANNELS
            else ("purpose", f"unknown purpose {purpose!r}")
            if purpose not in PURPOSES
            else ("state", f"unknown state {state!r}")
            if state not in CONSENT_STATES
            else None
        )
        if problem:
            errors.append(RowError(row, f"{where}.{problem[0]}", problem[1]))
            continue
        try:
            evidence = _evidence(item, default, prefix="")
        except FieldError as exc:
            errors.append(RowError(row, f"{where}.{exc.field}", exc.message))
            continue
        consents.append((channel, purpose, state, evidence))
    return consents


def contact_row_parse(
    raw: Mapping[str, Any],
    *,
    row: int,
    blank_means_unchanged: bool,
    default_evidence: Evidence | None = None,
    require_identifier: bool = True,
) -> ParsedRow:
    """One input row (API object or CSV record) into normalised values, or RowInvalid listing
    every bad field of the row."""
    errors: list[RowError] = []
    values = _parse_fields(raw, row=row, blank_means_unchanged=blank_means_unchanged, errors=errors)
    values.update(
        _parse_customer_since(
            raw, row=row, blank_means_unchanged=blank_means_unchanged, errors=errors
        )
    )
    tags = values.pop("tags", None)
    consents = _parse_consent_columns(raw, row=row, default=default_evidence, errors=errors)
    consents += _parse_consent_list(
        raw.get("consents"), row=row, default=default_evidence, errors=errors
    )
    if require_identifier and not errors and not any(values.get(n) for n in IDENTIFIERS):
        errors.append(
            RowError(row, "email", _("a contact needs at least one of external_id, email, phone"))
        )
    if errors:
        raise RowInvalid(errors)
    return ParsedRow(row=row, values=values, tags=tags, consents=consents)


class SeenKeys:
    """The identifier keys a long import has already written, for duplicate detection across
    batches in about 8 bytes per key: recent keys in a small set, older ones merged into one
    sorted array of 64-bit digests (searched by bisection). A Python set of ints would cost
    about 70 bytes per key, which is what made memory grow with the file.

    A fixed 2 MiB bitmap indexed by each digest's low bits answers most lookups of a new key
    (the common case) without the bisection, which boxes an int at each of its ~20 steps and
    cost more than the rest of the duplicate check."""

    _FILTER_BITS = 1 << 24

    def __init__(self, *, recent_limit: int = 50_000) -> None:
        self._old = array("q")
        self._recent: set[int] = set()
        self._limit = recent_limit
        self._filter = bytearray(self._FILTER_BITS // 8)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        slot = digest & (self._FILTER_BITS - 1)
        if not self._filter[slot >> 3] & (1 << (slot & 7)):
            return False
        if digest in self._recent:
            return True
        index = bisect_left(self._old, digest)
        return index < len(self._old) and self._old[index] == digest

    def add(self, digest: int) -> None:
        self.update((digest,))

    def update(self, digests: Iterable[int]) -> None:
        bits, mask = self._filter, self._FILTER_BITS - 1
        for digest in digests:
            slot = digest & mask
            bits[slot >> 3] |= 1 << (slot & 7)
            self._recent.add(digest)
        if len(self._recent) >= max(self._limit, len(self._old) // 4):
            # A streaming merge: never a list of every key as Python ints.
            self._old = array("q", heapq.merge(self._old, sorted(self._recent)))
            self._recent = set()

    def __len__(self) -> int:
        return len(self._old) + len(self._recent)


def key_digest(key: str) -> int:
    """64-bit hash of an identifier key: lets a whole file be checked for duplicates in a set
    of small ints instead of keeping every address in memory. Only compared within one
    process, so Python's (seeded) string hash is enough; a collision (~1e-8 for a million
    rows) would only refuse a row as a duplicate, never merge two contacts."""
    return hash(key)  # a signed 64-bit int on 64-bit CPython, as array("q") stores


class StoredContact:
    """A contact row as the bulk path needs it: plain attributes, no model instance. Building
    10,000 model instances costs more than the whole write, mostly in the phone field, which
    re-parses every number it loads."""

    __slots__ = (
        "attributes",
        "customer_since",
        "email",
        "external_id",
        "first_name",
        "last_name",
        "locale",
        "phone",
        "pk",
        "timezone",
    )

    def __init__(self, row: Sequence[Any]) -> None:
        (
            self.pk,
            self.external_id,
            self.email,
            self.phone,
            self.first_name,
            self.last_name,
            self.locale,
            self.timezone,
            attributes,
            self.customer_since,
        ) = row
        # Django's PostgreSQL backend hands jsonb over as text and decodes it in the field.
        self.attributes = json.loads(attributes) if isinstance(attributes, str) else attributes


Stored = Contact | StoredContact


def contacts_by_identifiers(
    *, workspace: Workspace | int, rows: Sequence[ParsedRow], as_models: bool = False
) -> dict[str, Stored]:
    """Live contacts of the workspace holding any identifier of the rows, keyed
    "<field>:<value>"."""
    workspace_id = _workspace_id(workspace)
    wanted: dict[str, set[str]] = {name: set() for name in IDENTIFIERS}
    for parsed in rows:
        for name in IDENTIFIERS:
            if parsed.values.get(name):
                wanted[name].add(parsed.values[name])
    contacts: Iterable[Stored]
    if not as_models:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, external_id, email, phone, first_name, last_name, locale, timezone, "
                "attributes, customer_since FROM contacts_contact "
                "WHERE workspace_id = %s AND erased_at IS NULL "
                "AND (external_id = ANY(%s) OR email = ANY(%s) OR phone = ANY(%s))",
                [
                    workspace_id,
                    sorted(wanted["external_id"]),
                    sorted(wanted["email"]),
                    sorted(wanted["phone"]),
                ],
            )
            contacts = [StoredContact(row) for row in cursor.fetchall()]
    else:
        query = Q(pk__in=[])
        if wanted["external_id"]:
            query |= Q(external_id__in=wanted["external_id"])
        if wanted["email"]:
            query |= Q(email__in=wanted["email"])
        if wanted["phone"]:
            query |= Q(phone__in=wanted["phone"])
        contacts = Contact.objects.for_workspace(workspace_id).filter(query, erased_at__isnull=True)
    found: dict[str, Stored] = {}
    for contact in contacts:
        if contact.external_id:
            found[f"external_id:{contact.external_id}"] = contact
        if contact.email:
            found[f"email:{contact.email}"] = contact
        if contact.phone:
            found[f"phone:{contact.phone}"] = contact
    return found


def contact_match(*, parsed: ParsedRow, found: dict[str, Stored]) -> Stored | None:
    """external_id, then email, then phone; a row whose identifiers point at two different
    contacts is refused rather than silently merged."""
    hits = {
        name: found.get(f"{name}:{parsed.values[name]}")
        for name in IDENTIFIERS
        if parsed.values.get(name)
    }
    target = next((c for c in hits.values() if c is not None), None)
    if target is None:
        return None
    for name, other in hits.items():
        if other is not None and other.pk != target.pk:
            raise RowInvalid(
                [
                    RowError(
                        parsed.row,
                        name,
                        f"{parsed.values[name]!r} belongs to another contact (#{other.pk}) "
                        f"than the one this row matches (#{target.pk})",
                    )
                ]
            )
    new_external = parsed.values.get("external_id")
    if new_external and target.external_id and target.external_id != new_external:
        raise RowInvalid(
            [
                RowError(
                    parsed.row,
                    "external_id",
                    f"the contact matched by email/phone (#{target.pk}) has external_id "
                    f"{target.external_id!r}, not {new_external!r}",
                )
            ]
        )
    return target


def contact_values_apply(*, parsed: ParsedRow, target: Stored) -> bool:
    """Copy the row's values onto the contact; attributes merge. Returns whether it changed."""
    changed = False
    for name, value in parsed.values.items():
        if name == "attributes":
            merged = {**(target.attributes or {}), **value}
            if merged != target.attributes:
                target.attributes = merged
                changed = True
        elif str(getattr(target, name) or "") != str(value or ""):
            setattr(target, name, value)
            changed = True
    return changed


def _drop_duplicates(
    rows: Sequence[ParsedRow], *, seen: SeenKeys | set[int], report: UpsertReport
) -> tuple[list[ParsedRow], list[int]]:
    """A second row with an identifier already used in this file is an error, not an update:
    the file contradicts itself and we cannot tell which row is right. Returns the accepted
    rows and the digests of their keys, for `seen` once the batch is written."""
    first_row: dict[str, int] = {}
    accepted: list[ParsedRow] = []
    digests: list[int] = []
    for parsed in rows:
        # Runs once per imported row: each key is built and hashed once.
        keys = parsed.identifier_keys()
        row_digests = [key_digest(k) for k in keys]
        duplicate = next(
            (k for k, d in zip(keys, row_digests, strict=True) if k in first_row or d in seen),
            None,
        )
        if duplicate is None:
            for key in keys:
                first_row[key] = parsed.row
            accepted.append(parsed)
            digests += row_digests
            continue
        name, value = duplicate.split(":", 1)
        where = (
            _("row %(row)s") % {"row": first_row[duplicate]}
            if duplicate in first_row
            else _("an earlier row")
        )
        report.results.append(
            RowResult(
                parsed.row,
                "error",
                errors=[
                    RowError(
                        parsed.row,
                        name,
                        _("duplicate %(field)s %(value)s: already in %(where)s")
                        % {"field": name, "value": repr(value), "where": where},
                    )
                ],
            )
        )
    return accepted, digests


def contacts_upsert(
    *,
    workspace: Workspace | int,
    rows: Sequence[ParsedRow],
    seen: SeenKeys | set[int] | None = None,
) -> UpsertReport:
    """Write one batch of parsed rows into the workspace set-based; per-row results, errors
    named by row."""
    workspace_id = _workspace_id(workspace)
    report = UpsertReport()
    seen = seen if seen is not None else set()
    accepted, digests = _drop_duplicates(rows, seen=seen, report=report)
    # A person who asked to be erased is not added back without new consent (contacts.privacy).
    refused = erased_rows_refused(workspace_id=workspace_id, rows=[p.values for p in accepted])
    for index, (name, reason) in refused.items():
        row = accepted[index].row
        report.results.append(RowResult(row, "error", errors=[RowError(row, name, reason)]))
    accepted = [p for index, p in enumerate(accepted) if index not in refused]
    if not accepted:
        report.results.sort(key=lambda r: r.row)
        return report

    with transaction.atomic():
        found = contacts_by_identifiers(workspace=workspace_id, rows=accepted)
        creates: list[ParsedRow] = []
        customer_changed: list[int] = []
        updates: list[tuple[ParsedRow, Stored]] = []
        unchanged: list[tuple[ParsedRow, Stored]] = []
        for parsed in accepted:
            try:
                # A fresh import finds nothing: no row can then match, nor conflict.
                target = contact_match(parsed=parsed, found=found) if found else None
            except RowInvalid as exc:
                report.results.append(RowResult(parsed.row, "error", errors=exc.errors))
                continue
            if target is None:
                creates.append(parsed)
                continue
            was_customer_since = target.customer_since
            if contact_values_apply(parsed=parsed, target=target):
                updates.append((parsed, target))
                if target.customer_since != was_customer_since:
                    customer_changed.append(target.pk)
            else:
                unchanged.append((parsed, target))
        created_ids = _insert(creates, workspace_id=workspace_id)
        _update([c for _, c in updates], workspace_id=workspace_id)
        # A soft opt-in (legitimate interest) sends only while the contact is a customer.
        sendable_refresh(contact_ids=customer_changed)
        written: list[tuple[ParsedRow, int]] = [
            *zip(creates, created_ids, strict=True),
            *((p, c.pk) for p, c in updates),
            *((p, c.pk) for p, c in unchanged),
        ]
        contact_tags_add(
            workspace=workspace_id,
            pairs=[(pk, parsed.tags) for parsed, pk in written if parsed.tags],
        )
        changes = [
            ConsentChange(contact_id=pk, channel=channel, purpose=purpose, state=state, evidence=ev)
            for parsed, pk in written
            for channel, purpose, state, ev in parsed.consents
        ]
        report.consent_changes = consents_apply_bulk(
            workspace=workspace_id,
            changes=changes,
            fresh_contact_ids=frozenset(created_ids),
        )
    report.results.extend(
        RowResult(p.row, "created", id=pk) for p, pk in zip(creates, created_ids, strict=True)
    )
    report.results.extend(RowResult(p.row, "updated", id=c.pk) for p, c in updates)
    report.results.extend(RowResult(p.row, "unchanged", id=c.pk) for p, c in unchanged)
    seen.update(digests)
    report.results.sort(key=lambda r: r.row)
    return report


def _phone_text(value: Any) -> str | None:
    return str(value) if value else None


def _insert(creates: Sequence[ParsedRow], *, workspace_id: int) -> list[int]:
    """New contacts, ids in input order, through COPY, which skips the ORM's per-field
    preparation (the phone field alone re-parses every number) and is several times faster than
    bulk_create for large batches."""
    if not creates:
        return []
    now = timezone.now()
    with connection.cursor() as cursor:
        # Reserve the ids first, then COPY the rows with them: COPY is PostgreSQL's fastest
        # load path but cannot return generated ids.
        # The sequence is looked up once, not once per id (that lookup was ~85% of the 13 ms
        # this took for 5,000 ids), and the ids come back as one array, not 5,000 rows.
        cursor.execute(
            "WITH s AS MATERIALIZED ("
            "SELECT pg_get_serial_sequence('contacts_contact', 'id')::regclass AS seq) "
            "SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, %s)",
            [len(creates)],
        )
        ids: list[int] = cursor.fetchone()[0]
        with cursor.cursor.copy(
            "COPY contacts_contact (id, workspace_id, external_id, email, phone, first_name, "
            "last_name, locale, timezone, attributes, customer_since, created_at, updated_at, "
            "sendable) FROM STDIN"
        ) as copy:
            for pk, parsed in zip(ids, creates, strict=True):
                values = parsed.values
                copy.write_row(
                    (
                        pk,
                        workspace_id,
                        values.get("external_id") or None,
                        values.get("email") or None,
                        values.get("phone") or None,
                        values.get("first_name") or "",
                        values.get("last_name") or "",
                        values.get("locale") or "",
                        values.get("timezone") or "",
                        json.dumps(values.get("attributes") or {}),
                        values.get(CUSTOMER_SINCE),
                        now,
                        now,
                        _initial_sendable(parsed),
                    )
                )
    return ids


def _initial_sendable(parsed: ParsedRow) -> int:
    """A new contact has no suppression yet, so its mask is what the row grants (the last
    word per channel and purpose); contacts.consent then finds it already right."""
    states: dict[tuple[str, str], str] = {}
    for channel, purpose, state, _evidence in parsed.consents:
        states[(channel, purpose)] = state
    mask = 0
    for (channel, purpose), state in states.items():
        if state == ConsentState.GRANTED:
            mask |= consent_bit(channel, purpose)
    return mask


def _update(contacts: Sequence[Stored], *, workspace_id: int) -> None:
    if not contacts:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE contacts_contact c
            SET external_id = t.x, email = t.e, phone = t.p, first_name = t.f, last_name = t.l,
                locale = t.lo, timezone = t.tz, attributes = t.a::jsonb, customer_since = t.cs,
                updated_at = %s
            FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::varchar[],
                        %s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::text[],
                        %s::date[])
                 AS t(id, x, e, p, f, l, lo, tz, a, cs)
            WHERE c.id = t.id AND c.workspace_id = %s
            """,
            [
                timezone.now(),
                [c.pk for c in contacts],
                [c.external_id or None for c in contacts],
                [c.email or None for c in contacts],
                [_phone_text(c.phone) for c in contacts],
                [c.first_name for c in contacts],
                [c.last_name for c in contacts],
                [c.locale for c in contacts],
                [c.timezone for c in contacts],
                [json.dumps(c.attributes or {}) for c in contacts],
                [c.customer_since for c in contacts],
                workspace_id,
            ],
        )


def contacts_tables_analyze() -> None:
    """Refresh the planner's statistics after a bulk load grew the tables: plans made on the
    statistics of a much smaller table pick nested loops that scale with the square of it."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_contact, contacts_consent")


def contact_tags_add(*, workspace: Workspace | int, pairs: Iterable[tuple[int, list[str]]]) -> None:
    """Tag contacts of the workspace by name; tags are the workspace's own (made on first use).
    Ids of another workspace's contacts are skipped, never tagged."""
    pairs = list(pairs)
    if not pairs:
        return
    workspace_id = _workspace_id(workspace)
    names = {name for _, tags in pairs for name in tags}
    Tag.objects.bulk_create(
        [Tag(workspace_id=workspace_id, name=n) for n in names], ignore_conflicts=True
    )
    ids = dict(
        Tag.objects.for_workspace(workspace_id).filter(name__in=names).values_list("name", "pk")
    )
    with connection.cursor() as cursor:
        # The join keeps a caller's stray id of another workspace from linking across.
        cursor.execute(
            """
            INSERT INTO contacts_contacttag (workspace_id, contact_id, tag_id)
            SELECT c.workspace_id, t.contact_id, t.tag_id
            FROM unnest(%s::bigint[], %s::bigint[]) AS t(contact_id, tag_id)
            JOIN contacts_contact c ON c.id = t.contact_id AND c.workspace_id = %s
            ON CONFLICT DO NOTHING
            """,
            [
                [cid for cid, tags in pairs for _ in tags],
                [ids[name] for _, tags in pairs for name in tags],
                workspace_id,
            ],
        )


def contact_rows_parse(
    *,
    raws: Sequence[Mapping[str, Any]],
    row_numbers: Iterable[int],
    blank_means_unchanged: bool,
    default_evidence: Evidence | None = None,
) -> tuple[list[ParsedRow], list[RowResult]]:
    """Parse a batch: the good rows, and a result for each bad one. Pure Python, no database."""
    parsed: list[ParsedRow] = []
    failed: list[RowResult] = []
    for row, raw in zip(row_numbers, raws, strict=True):
        try:
            parsed.append(
                contact_row_parse(
                    raw,
                    row=row,
                    blank_means_unchanged=blank_means_unchanged,
                    default_evidence=default_evidence,
                )
            )
        except RowInvalid as exc:
            failed.append(RowResult(row, "error", errors=exc.errors))
    return parsed, failed


def contacts_upsert_parsed(
    *,
    workspace: Workspace | int,
    parsed: Sequence[ParsedRow],
    failed: Sequence[RowResult],
    seen: SeenKeys | set[int] | None = None,
) -> UpsertReport:
    """Write parsed rows; a batch the database refuses (a concurrent writer took an address
    meanwhile) is reported row by row rather than lost silently."""
    try:
        report = contacts_upsert(workspace=workspace, rows=parsed, seen=seen)
    except (DatabaseError, ConsentEvidenceMissing) as exc:
        report = UpsertReport(
            results=[
                RowResult(p.row, "error", errors=[RowError(p.row, "batch", str(exc)[:300])])
                for p in parsed
            ]
        )
    report.results = sorted([*report.results, *failed], key=lambda r: r.row)
    return report


def contacts_upsert_rows(
    *,
    workspace: Workspace | int,
    raws: Sequence[Mapping[str, Any]],
    first_row: int = 1,
    row_numbers: Sequence[int] | None = None,
    blank_means_unchanged: bool,
    default_evidence: Evidence | None = None,
    seen: SeenKeys | set[int] | None = None,
) -> UpsertReport:
    """Parse and upsert one batch of raw rows; bad rows are reported, good rows still written.
    Rows are numbered from `first_row`, or by `row_numbers` (a file's line numbers)."""
    parsed, failed = contact_rows_parse(
        raws=raws,
        row_numbers=row_numbers or range(first_row, first_row + len(raws)),
        blank_means_unchanged=blank_means_unchanged,
        default_evidence=default_evidence,
    )
    return contacts_upsert_parsed(workspace=workspace, parsed=parsed, failed=failed, seen=seen)


def contact_update(*, contact: Contact, data: Mapping[str, Any], replace_tags: bool) -> Contact:
    """Change one contact (API PATCH/PUT): the fields given, tags replaced when given, consent
    entries through contacts.consent. Refused, naming the field, when another contact of the
    same workspace holds an identifier."""
    from contacts.errors import ContactErased, InvalidContactData

    if contact.erased_at is not None:
        raise ContactErased(_("contact #%(id)s was erased") % {"id": contact.pk})
    try:
        parsed = contact_row_parse(
            data, row=1, blank_means_unchanged=False, require_identifier=False
        )
    except RowInvalid as exc:
        raise InvalidContactData({e.field: e.message for e in exc.errors}) from None
    erased_values_refuse(workspace_id=contact.workspace_id, values=parsed.values)
    with transaction.atomic():
        others = Contact.objects.for_workspace(contact.workspace_id).exclude(pk=contact.pk)
        for name in IDENTIFIERS:
            value = parsed.values.get(name)
            if value and others.filter(**{name: value}).exists():
                raise InvalidContactData({name: f"{value!r} belongs to another contact"})
        if "attributes" in parsed.values and replace_tags:
            # A full replace (PUT) replaces attributes too, rather than merging them.
            contact.attributes = {}
        was_customer_since = contact.customer_since
        if contact_values_apply(parsed=parsed, target=contact):
            contact.save()
        if contact.customer_since != was_customer_since:
            sendable_refresh(contact_ids=[contact.pk])  # a soft opt-in lapses or resumes
        if parsed.tags is not None and replace_tags:
            ContactTag.objects.filter(contact=contact).exclude(tag__name__in=parsed.tags).delete()
        if parsed.tags:
            contact_tags_add(workspace=contact.workspace_id, pairs=[(contact.pk, parsed.tags)])
        consents_apply_bulk(
            workspace=contact.workspace_id,
            changes=[
                ConsentChange(contact_id=contact.pk, channel=ch, purpose=pu, state=st, evidence=ev)
                for ch, pu, st, ev in parsed.consents
            ],
        )
    return contact
