"""Compiling a segment definition into one queryset: tags any / all / none plus attribute
filters, all as EXISTS subqueries and JSON lookups, so the audience stays one SQL statement that
can be counted or joined set-based."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from contacts.errors import InvalidSegment
from contacts.models import Contact, ContactTag

ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
OPS = ("eq", "ne", "in", "exists", "missing", "gt", "gte", "lt", "lte", "contains")


def _names(value: Any, label: str) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidSegment(f"{label} must be a list of tag names")
    return [v.strip() for v in value]


def segment_validate_definition(
    *, tags_any: Any, tags_all: Any, tags_none: Any, attribute_filters: Any
) -> None:
    """Raise InvalidSegment naming the bad part, so the editor and the API can say what to fix."""
    _names(tags_any, "tags_any")
    _names(tags_all, "tags_all")
    _names(tags_none, "tags_none")
    _attribute_q(attribute_filters)


def _attribute_q(filters: Any) -> Q:
    if filters in (None, ""):
        return Q()
    if not isinstance(filters, list):
        raise InvalidSegment("attribute_filters must be a list of {key, op, value}")
    q = Q()
    for index, item in enumerate(filters):
        where = f"attribute_filters[{index}]"
        if not isinstance(item, dict):
            raise InvalidSegment(f"{where} must be an object with key, op and value")
        key, op, value = item.get("key"), item.get("op", "eq"), item.get("value")
        if not isinstance(key, str) or not ATTRIBUTE_KEY.match(key):
            raise InvalidSegment(f"{where}.key must be a name of letters, digits and _")
        if op not in OPS:
            raise InvalidSegment(f"{where}.op must be one of {', '.join(OPS)}")
        q &= _OP_BUILDERS[op](key, value, where)
    return q


def _needs_list(key: str, value: Any, where: str) -> Q:
    if not isinstance(value, list) or not value:
        raise InvalidSegment(f"{where}.value must be a non-empty list for 'in'")
    return Q(**{f"attributes__{key}__in": value})


def _needs_text(key: str, value: Any, where: str) -> Q:
    if not isinstance(value, str):
        raise InvalidSegment(f"{where}.value must be text for 'contains'")
    return Q(**{f"attributes__{key}__icontains": value})


def _compare(op: str) -> Callable[[str, Any, str], Q]:
    def build(key: str, value: Any, where: str) -> Q:
        if not isinstance(value, int | float | str) or isinstance(value, bool):
            raise InvalidSegment(f"{where}.value must be a number or text for {op!r}")
        return Q(**{f"attributes__{key}__{op}": value})

    return build


_OP_BUILDERS: dict[str, Callable[[str, Any, str], Q]] = {
    "eq": lambda key, value, _: Q(**{f"attributes__{key}": value}),
    # "not equal" includes contacts that do not have the attribute at all.
    "ne": lambda key, value, _: ~Q(**{f"attributes__{key}": value}) | ~Q(attributes__has_key=key),
    "in": _needs_list,
    "exists": lambda key, _v, _w: Q(attributes__has_key=key),
    "missing": lambda key, _v, _w: ~Q(attributes__has_key=key),
    "contains": _needs_text,
    **{op: _compare(op) for op in ("gt", "gte", "lt", "lte")},
}


def _has_tags(names: list[str]) -> Exists:
    return Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag__name__in=names))


def contacts_matching(
    *,
    tags_any: Any = None,
    tags_all: Any = None,
    tags_none: Any = None,
    attribute_filters: Any = None,
    base: QuerySet[Contact] | None = None,
) -> QuerySet[Contact]:
    """Contacts (never erased ones) matching a definition, as one lazy queryset."""
    qs = (base if base is not None else Contact.objects.all()).filter(erased_at__isnull=True)
    any_names = _names(tags_any, "tags_any")
    if any_names:
        qs = qs.filter(_has_tags(any_names))
    for name in _names(tags_all, "tags_all"):
        qs = qs.filter(_has_tags([name]))
    none_names = _names(tags_none, "tags_none")
    if none_names:
        qs = qs.filter(~_has_tags(none_names))
    return qs.filter(_attribute_q(attribute_filters))
