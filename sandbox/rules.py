"""Error rules a fake applies a limited number of times (per token, per account, or to all)."""

from __future__ import annotations

from typing import Protocol, TypeVar


class Limited(Protocol):
    remaining: int | None


RuleT = TypeVar("RuleT", bound=Limited)


def rule_take(store: dict[str, RuleT], key: str) -> RuleT | None:
    """The rule for `key` with one use counted; a rule whose uses run out is removed."""
    rule = store.get(key)
    if rule is not None and rule.remaining is not None:
        rule.remaining -= 1
        if rule.remaining <= 0:
            del store[key]
    return rule


def global_rule_take(rule: RuleT | None) -> tuple[RuleT | None, RuleT | None]:
    """(the rule to apply now, the rule left for next time) for a fake-wide rule."""
    store = {"*": rule} if rule is not None else {}
    return rule_take(store, "*"), store.get("*")
