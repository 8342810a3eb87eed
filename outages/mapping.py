"""Mapping rules: which network an alert is about, from the attributes its normaliser extracted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from outages.networks import network_is_known


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
        if matched and network_is_known(str(rule.get("network", ""))):
            return str(rule["network"])
    for candidate in (
        explicit,
        attributes.get("labels.network", ""),
        attributes.get("tags.network", ""),
    ):
        if candidate and network_is_known(candidate):
            return candidate
    if default_network and network_is_known(default_network):
        return default_network
    return None
