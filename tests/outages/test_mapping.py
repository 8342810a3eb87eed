"""Mapping rules: first match wins, then a network the sender names, then the default."""

from __future__ import annotations

from outages.mapping import mapping_rules_validate, signal_network_resolve

RULES = [
    {"match": "labels.service", "equals": "ig-api", "network": "instagram"},
    {"match": "monitor.name", "regex": "(?i)^whatsapp", "network": "whatsapp"},
]


def test_the_first_matching_rule_wins_over_everything_else() -> None:
    attributes = {"labels.service": "ig-api", "labels.network": "x"}
    assert (
        signal_network_resolve(rules=RULES, default_network="facebook", attributes=attributes)
        == "instagram"
    )


def test_regex_rules_search_the_attribute() -> None:
    attributes = {"monitor.name": "WhatsApp Cloud API"}
    assert signal_network_resolve(rules=RULES, default_network="", attributes=attributes) == (
        "whatsapp"
    )


def test_a_network_the_sender_names_comes_before_the_default() -> None:
    for attributes, explicit in (({}, "tiktok"), ({"labels.network": "tiktok"}, ""),
                                 ({"tags.network": "tiktok"}, "")):  # fmt: skip
        assert (
            signal_network_resolve(
                rules=RULES, default_network="facebook", attributes=attributes, explicit=explicit
            )
            == "tiktok"
        )


def test_an_unknown_named_network_falls_back_to_the_default_or_nothing() -> None:
    assert (
        signal_network_resolve(rules=[], default_network="x", attributes={}, explicit="myspace")
        == "x"
    )
    assert signal_network_resolve(rules=[], default_network="", attributes={}) is None


def test_rule_problems_are_described() -> None:
    assert mapping_rules_validate(rules=RULES) == []
    problems = mapping_rules_validate(
        rules=[{"match": "", "equals": "a", "regex": "b", "network": "nope"}, "x"]
    )
    assert any("needs 'match'" in p for p in problems)
    assert any("exactly one of" in p for p in problems)
    assert any("unknown network" in p for p in problems)
    assert any("must be an object" in p for p in problems)
    assert mapping_rules_validate(rules={"a": 1}) == ["mapping rules must be a JSON list of rules"]
