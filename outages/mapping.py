"""Mapping rules: which network an alert is about, from the attributes its normaliser extracted."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from outages.networks import network_choices, network_is_known


def mapping_rules_validate(*, rules: Any) -> list[str]:
    """Problems with a source's rules, in words an operator can act on (empty when fine)."""
    if not isinstance(rules, list):
        return ["mapping rules must be a JSON list of rules"]
    problems = []
    for index, rule in enumerate(rules):
        where = f"rule {index + 1}"
        if not isinstance(rule, dict):
            problems.append(f"{where} must be an object")
            continue
        if not isinstance(rule.get("match"), str) or not rule["match"]:
            problems.append(f"{where} needs 'match' (an attribute such as labels.service)")
        if ("equals" in rule) == ("regex" in rule):
            problems.append(f"{where} needs exactly one of 'equals' or 'regex'")
        if "regex" in rule:
            try:
                re.compile(str(rule["regex"]))
            except re.error as exc:
                problems.append(f"{where}: invalid regex: {exc}")
        if not network_is_known(str(rule.get("network", ""))):
            problems.append(f"{where}: unknown network {rule.get('network')!r}")
    return problems


def signal_network_resolve(
    *,
    rules: list[dict[str, Any]],
    default_network: str,
    attributes: Mapping[str, str],
    explicit: str = "",
) -> str | None:
    """First matching rule, else a network the sender named itself, else the source's default."""
    known = frozenset(value for value, _ in network_choices())
    return _resolve(rules, default_network, attributes, explicit, known)


def signals_network_resolve(
    *,
    rules: list[dict[str, Any]],
    default_network: str,
    items: Sequence[tuple[Mapping[str, str], str]],
) -> list[str | None]:
    """signal_network_resolve for many (attributes, explicit) pairs: a group reads the list of
    networks once, not once per alert."""
    known = frozenset(value for value, _ in network_choices())
    return [
        _resolve(rules, default_network, attributes, explicit, known)
        for attributes, explicit in items
    ]


def _resolve(
    rules: list[dict[str, Any]],
    default_network: str,
    attributes: Mapping[str, str],
    explicit: str,
    known: frozenset[str],
) -> str | None:
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        value = attributes.get(str(rule.get("match", "")))
        if value is None:
            continue
        if "equals" in rule:
            matched = value == str(rule["equals"])
        else:
            try:
                matched = re.search(str(rule.get("regex", "")), value) is not None
            except re.error:
                matched = False
        if matched and str(rule.get("network", "")) in known:
            return str(rule["network"])
    for candidate in (
        explicit,
        attributes.get("labels.network", ""),
        attributes.get("tags.network", ""),
    ):
        if candidate and candidate in known:
            return candidate
    if default_network and default_network in known:
        return default_network
    return None
