"""The segment editor's rule rows: what a marketer picks in plain words, turned into the stored
definition that contacts.segments evaluates (and back, to show a saved segment as rows).

One parser serves the form's save and its live count, so the count is always of what would be
saved. Nothing here writes; contacts.segments validates the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts.errors import InvalidSegment
from contacts.models import Channel
from contacts.segments import CONSENT_CHANNELS, segment_validate_definition

KIND_CHOICES = [
    ("attribute", gettext_lazy("an attribute")),
    ("consent", gettext_lazy("may be sent marketing by")),
    ("created", gettext_lazy("was added to the CRM")),
]
# Operators in the words the rows show; the value box is hidden for "is set" / "is not set".
ATTRIBUTE_OP_CHOICES = [
    ("eq", gettext_lazy("is")),
    ("ne", gettext_lazy("is not")),
    ("in", gettext_lazy("is one of (separate with commas)")),
    ("contains", gettext_lazy("contains")),
    ("exists", gettext_lazy("is filled in")),
    ("missing", gettext_lazy("is empty or missing")),
    ("gt", gettext_lazy("is more than / after")),
    ("gte", gettext_lazy("is at least / on or after")),
    ("lt", gettext_lazy("is less than / before")),
    ("lte", gettext_lazy("is at most / on or before")),
]
CREATED_OP_CHOICES = [
    ("gte", gettext_lazy("on or after")),
    ("lt", gettext_lazy("before")),
]
CONSENT_CHANNEL_CHOICES = [(c.value, c.label) for c in Channel if c.value in CONSENT_CHANNELS]
NO_VALUE_OPS = ("exists", "missing")
_ROW = re.compile(r"^rule-(\d{1,3})-kind$")
# Rows shown empty under the saved ones: without JavaScript a marketer still adds two at a time.
BLANK_ROWS = 2


def tag_names_parse(text: str) -> list[str]:
    """Comma-separated tag names, trimmed, without blanks or repeats (first spelling kept)."""
    names: list[str] = []
    for part in (text or "").split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def _typed(value: str) -> Any:
    """A number when the text is exactly one ("42", "9.5"), else the text: "01234" stays a
    postcode, "2026-01-31" stays a date that compares in order as text."""
    text = value.strip()
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        if str(number) == text:
            return number
    return text


def rule_rows_read(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """The raw rows of a posted form, in row order."""
    indexes = sorted(int(m.group(1)) for key in data if (m := _ROW.match(key)))
    rows = []
    for index in indexes:
        prefix = f"rule-{index}-"
        rows.append(
            {
                name: str(data.get(prefix + name) or "")
                for name in ("kind", "key", "op", "value", "channel", "created_op")
            }
        )
    return rows


def rule_rows_to_filters(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Stored rules from rows; blank rows are skipped. Raises ValidationError naming the row."""
    filters: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        kind = row.get("kind") or "attribute"
        if kind == "consent":
            if row.get("channel"):
                filters.append({"consent": row["channel"]})
            continue
        if kind == "created":
            if not row.get("value", "").strip():
                continue
            filters.append({"created": row.get("created_op") or "gte", "value": row["value"]})
            continue
        key, op, value = row.get("key", "").strip(), row.get("op") or "eq", row.get("value", "")
        if not key:
            if value.strip():
                raise forms.ValidationError(
                    _("Rule %(n)d: say which attribute the value “%(value)s” is for.")
                    % {"n": number, "value": value.strip()[:80]}
                )
            continue
        if op in NO_VALUE_OPS:
            filters.append({"key": key, "op": op})
        elif op == "in":
            values = [_typed(v) for v in value.split(",") if v.strip()]
            if not values:
                raise forms.ValidationError(
                    _("Rule %(n)d: list at least one value, separated by commas.") % {"n": number}
                )
            filters.append({"key": key, "op": op, "value": values})
        elif op == "contains":
            filters.append({"key": key, "op": op, "value": value.strip()})
        else:
            filters.append({"key": key, "op": op, "value": _typed(value)})
    return filters


def definition_from_post(data: Mapping[str, Any]) -> dict[str, Any]:
    """The whole definition from a posted editor (tags and rule rows)."""
    return {
        "tags_any": tag_names_parse(str(data.get("tags_any") or "")),
        "tags_all": tag_names_parse(str(data.get("tags_all") or "")),
        "tags_none": tag_names_parse(str(data.get("tags_none") or "")),
        "attribute_filters": rule_rows_to_filters(rule_rows_read(data)),
    }


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def filters_to_rows(filters: Any) -> list[dict[str, str]]:
    """A saved definition as rows (a row that is not understood shows as an attribute row with
    what it holds, so the editor can fix it rather than lose it)."""
    rows = []
    for item in filters if isinstance(filters, list) else []:
        if not isinstance(item, dict):
            continue
        if "consent" in item:
            rows.append({"kind": "consent", "channel": _shown(item["consent"])})
        elif "created" in item:
            rows.append(
                {
                    "kind": "created",
                    "created_op": _shown(item["created"]),
                    "value": _shown(item.get("value")),
                }
            )
        else:
            rows.append(
                {
                    "kind": "attribute",
                    "key": _shown(item.get("key")),
                    "op": _shown(item.get("op", "eq")),
                    "value": _shown(item.get("value")),
                }
            )
    return rows


class RuleRowsWidget(forms.Widget):
    """Rule rows with plain-word choices; static JS (contacts/segment-builder.js) adds rows and
    hides the inputs a row's kind does not use."""

    template_name = "admin/contacts/segment/rule_rows.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        rows = value if isinstance(value, list) and value and "kind" in value[0] else None
        if rows is None:
            rows = filters_to_rows(value)
        rows = [*rows, *({"kind": "attribute"} for _ in range(BLANK_ROWS))]
        context["rows"] = [{"index": i, **row} for i, row in enumerate(rows)]
        context["kinds"] = KIND_CHOICES
        context["ops"] = ATTRIBUTE_OP_CHOICES
        context["created_ops"] = CREATED_OP_CHOICES
        context["channels"] = CONSENT_CHANNEL_CHOICES
        return context

    def value_from_datadict(
        self, data: Mapping[str, Any], files: MultiValueDict[str, Any], name: str
    ) -> list[dict[str, str]]:
        return rule_rows_read(data)

    def value_omitted_from_data(
        self, data: Mapping[str, Any], files: MultiValueDict[str, Any], name: str
    ) -> bool:
        return False


class RuleRowsField(forms.Field):
    widget = RuleRowsWidget

    def to_python(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list) and all(isinstance(r, dict) and "kind" in r for r in value):
            return rule_rows_to_filters(value)
        return value if isinstance(value, list) else []

    def validate(self, value: Any) -> None:
        super().validate(value)
        # Each rule on its own, so the message names the row instead of a JSON path.
        problems = []
        for number, rule in enumerate(value or [], start=1):
            try:
                segment_validate_definition(
                    tags_any=None, tags_all=None, tags_none=None, attribute_filters=[rule]
                )
            except InvalidSegment as exc:
                reason = re.sub(r"^attribute_filters\[0\]\.?\w*:?\s*", "", str(exc.detail))
                problems.append(_("Rule %(n)d: %(reason)s") % {"n": number, "reason": reason})
        if problems:
            raise forms.ValidationError(problems)


class TagNamesField(forms.CharField):
    """Tag names typed as "vip, newsletter"; shown back the same way."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return [str(v) for v in value]
        return tag_names_parse(str(value or ""))
