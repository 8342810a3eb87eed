"""Compiling a segment definition into one queryset: tags any / all / none plus rules, all as
EXISTS subqueries, JSON lookups and column filters, so the audience stays one SQL statement that
can be counted or joined set-based.

``attribute_filters`` holds three kinds of rule (the admin's rule rows write them; JSON keeps old
rows valid, so no migration was needed):
- ``{"key": "city", "op": "eq", "value": "Lyon"}``: a contact attribute (ISO dates as text
  compare in date order with gt/gte/lt/lte);
- ``{"consent": "email"}``: may be sent marketing on that channel now (consent granted, not
  suppressed);
- ``{"created": "gte", "value": "2026-01-31"}``: added to the CRM on or after / before a date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from django.db.models import BooleanField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KeyTransform
from django.utils.translation import gettext as _

from contacts.attribute_keys import attribute_key_problem
from contacts.errors import InvalidSegment
from contacts.models import Channel, Contact, ContactTag, Purpose, Segment, consent_bit
from continuity.models import Workspace

OPS = ("eq", "ne", "in", "exists", "missing", "gt", "gte", "lt", "lte", "contains")
# A "created" rule compares the day a contact was added: on or after, or before.
CREATED_OPS = ("gte", "lt")
CONSENT_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WHATSAPP)
# The ORM lookup each operator compiles to. Lookup names come only from this table and keys only
# travel as SQL parameters of a JSON key transform (``attributes -> %s``): nothing a marketer
# types becomes part of a lookup path.
_LOOKUPS = {
    "eq": "exact",
    "ne": "exact",
    "in": "in",
    "contains": "icontains",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
}


@dataclass(frozen=True)
class AttributeRule:
    """One validated attribute filter: a plain attribute name, an operator of OPS, a value."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class ConsentRule:
    """May be sent marketing on ``channel`` now."""

    channel: str


@dataclass(frozen=True)
class CreatedRule:
    """Added to the CRM on or after (gte) / before (lt) the start of ``day`` (UTC)."""

    op: str
    day: date


Rule = AttributeRule | ConsentRule | CreatedRule


def _names(value: Any, label: str) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidSegment(_("%(field)s must be a list of tag names") % {"field": label})
    return [v.strip() for v in value]


def segment_validate_definition(
    *, tags_any: Any, tags_all: Any, tags_none: Any, attribute_filters: Any
) -> None:
    """Raise InvalidSegment naming the bad part, so the editor and the API can say what to fix."""
    _names(tags_any, "tags_any")
    _names(tags_all, "tags_all")
    _names(tags_none, "tags_none")
    _attribute_rules(attribute_filters)


def _special_rule(item: dict[str, Any], where: str) -> Rule:
    if "consent" in item:
        if item["consent"] not in CONSENT_CHANNELS:
            raise InvalidSegment(
                f"{where}.consent must be one of {', '.join(map(str, CONSENT_CHANNELS))}"
            )
        return ConsentRule(channel=str(item["consent"]))
    op, value = item.get("created"), item.get("value")
    if op not in CREATED_OPS:
        raise InvalidSegment(f"{where}.created must be one of {', '.join(CREATED_OPS)}")
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        raise InvalidSegment(f"{where}.value must be a date such as 2026-01-31") from None
    return CreatedRule(op=str(op), day=day)


def _attribute_rules(filters: Any) -> list[Rule]:
    if filters in (None, ""):
        return []
    if not isinstance(filters, list):
        raise InvalidSegment(_("attribute_filters must be a list of {key, op, value}"))
    rules: list[Rule] = []
    for index, item in enumerate(filters):
        where = f"attribute_filters[{index}]"
        if not isinstance(item, dict):
            raise InvalidSegment(
                _("%(where)s must be an object with key, op and value") % {"where": where}
            )
        if "consent" in item or "created" in item:
            rules.append(_special_rule(item, where))
            continue
        key, op, value = item.get("key"), item.get("op", "eq"), item.get("value")
        problem = attribute_key_problem(key)
        if problem is not None or not isinstance(key, str):
            raise InvalidSegment(f"{where}.key: {problem}")
        if op not in OPS:
            raise InvalidSegment(
                _("%(where)s.op must be one of %(ops)s") % {"where": where, "ops": ", ".join(OPS)}
            )
        _check_value(op, value, where)
        rules.append(AttributeRule(key=key, op=op, value=value))
    return rules


def _check_value(op: str, value: Any, where: str) -> None:
    if op == "in" and (not isinstance(value, list) or not value):
        raise InvalidSegment(
            _("%(where)s.value must be a non-empty list for 'in'") % {"where": where}
        )
    if op == "contains" and not isinstance(value, str):
        raise InvalidSegment(_("%(where)s.value must be text for 'contains'") % {"where": where})
    if op in ("gt", "gte", "lt", "lte") and (
        not isinstance(value, int | float | str) or isinstance(value, bool)
    ):
        raise InvalidSegment(
            _("%(where)s.value must be a number or text for %(op)s")
            % {"where": where, "op": repr(op)}
        )


def _attributes_filter(qs: QuerySet[Contact], rules: list[Rule]) -> QuerySet[Contact]:
    for index, rule in enumerate(rules):
        if isinstance(rule, ConsentRule):
            # The folded consent column (contacts.consent keeps it), as contacts_consented reads
            # it: one bit test in the same scan, never a join per contact.
            bit = consent_bit(rule.channel, Purpose.MARKETING)
            alias = f"_segment_consent_{index}"
            qs = qs.alias(**{alias: F("sendable").bitand(bit)}).filter(**{alias: bit})
            continue
        if isinstance(rule, CreatedRule):
            start = datetime.combine(rule.day, time.min, tzinfo=UTC)
            qs = qs.filter(**{f"created_at__{rule.op}": start})
            continue
        if rule.op == "exists":
            qs = qs.filter(attributes__has_key=rule.key)
            continue
        if rule.op == "missing":
            qs = qs.exclude(attributes__has_key=rule.key)
            continue
        # The alias's name is ours (the rule's position); the key is only the transform's
        # argument, so `city__regex` could never have become a lookup even if it got this far.
        alias = f"_segment_attribute_{index}"
        qs = qs.alias(**{alias: KeyTransform(rule.key, "attributes")})
        condition = Q(**{f"{alias}__{_LOOKUPS[rule.op]}": rule.value})
        if rule.op == "ne":
            # "not equal" includes contacts that do not have the attribute at all.
            condition = ~condition | ~Q(attributes__has_key=rule.key)
        qs = qs.filter(condition)
    return qs


def _has_tags(names: list[str], *, workspace_id: int) -> Exists:
    # Tag names are the workspace's own: another workspace's "vip" is another tag.
    return Exists(
        ContactTag.objects.filter(
            contact=OuterRef("pk"), tag__workspace_id=workspace_id, tag__name__in=names
        )
    )


def contacts_matching(
    *,
    workspace: Workspace | int,
    tags_any: Any = None,
    tags_all: Any = None,
    tags_none: Any = None,
    attribute_filters: Any = None,
    base: QuerySet[Contact] | None = None,
) -> QuerySet[Contact]:
    """The workspace's contacts (never erased ones) matching a definition, as one lazy
    queryset; tag names resolve inside the workspace."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    qs = (base if base is not None else Contact.objects.all()).filter(
        workspace_id=workspace_id, erased_at__isnull=True
    )
    any_names = _names(tags_any, "tags_any")
    if any_names:
        qs = qs.filter(_has_tags(any_names, workspace_id=workspace_id))
    for name in _names(tags_all, "tags_all"):
        qs = qs.filter(_has_tags([name], workspace_id=workspace_id))
    none_names = _names(tags_none, "tags_none")
    if none_names:
        qs = qs.filter(~_has_tags(none_names, workspace_id=workspace_id))
    return _attributes_filter(qs, _attribute_rules(attribute_filters))


def segment_problem(segment: Segment) -> str | None:
    """Why a saved segment cannot be used, as a sentence for its list, editor and count; None
    when it can. Rows saved before a rule tightened (or edited in the database) get here: every
    write path refuses such a definition."""
    try:
        segment_validate_definition(
            tags_any=segment.tags_any,
            tags_all=segment.tags_all,
            tags_none=segment.tags_none,
            attribute_filters=segment.attribute_filters,
        )
    except InvalidSegment as exc:
        return _("This rule is invalid: %(reason)s. It matches nobody until it is fixed.") % {
            "reason": str(exc.detail).rstrip(".")
        }
    return None


def segment_audience(
    *, segment: Segment, base: QuerySet[Contact] | None = None
) -> QuerySet[Contact]:
    """The saved segment's contacts; nobody when its definition is invalid (segment_problem
    says why), so a bad row cannot break a list, a count or a reroute."""
    try:
        return contacts_matching(
            workspace=segment.workspace_id,
            tags_any=segment.tags_any,
            tags_all=segment.tags_all,
            tags_none=segment.tags_none,
            attribute_filters=segment.attribute_filters,
            base=base,
        )
    except InvalidSegment:
        # A condition that is always false rather than .none(): reroute planning compiles the
        # audience's WHERE into its own SQL, and .none() has no SQL to compile.
        qs = (base if base is not None else Contact.objects.all()).filter(
            workspace_id=segment.workspace_id
        )
        return qs.filter(Value(False, output_field=BooleanField()))
