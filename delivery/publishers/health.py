"""Self-detection: when do publishing failures mean a network is down?

A pure function over outcomes (time, network, account, kind), so the rule is testable on its
own and the caller decides where outcomes live. The intended source is PostgreSQL (the
publish attempts the campaigns app records anyway), not Redis: invariant 1 keeps Redis to
messages, rate limits and locks, and an outage decision that a Redis flush could erase, or
that two workers could see differently, is worse than one indexed query over a three-minute
window. The caller asks after each failed attempt and opens the window through outages/ with
source "self-detected"; the same rule closes it via ``network_recovered`` after probes.

Only transient failures and unknown outcomes (a request that left and was never answered)
count. Throttling means the network works and is asking us to slow down; permanent errors
(expired tokens, policy, duplicates) are about one account or one post, not the network.
Requiring several accounts keeps one broken page from declaring Facebook down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from delivery.publishers.base import OutcomeKind

COUNTED: frozenset[str] = frozenset({"transient", "unknown"})
NEUTRAL: frozenset[str] = frozenset({"throttled", "permanent"})


@dataclass(frozen=True)
class PublishOutcome:
    at: datetime
    network: str
    account: str
    kind: OutcomeKind


@dataclass(frozen=True)
class HealthThresholds:
    window_s: int
    min_failures: int
    min_accounts: int
    recovery_successes: int

    @classmethod
    def from_settings(cls) -> HealthThresholds:
        return cls(
            window_s=settings.SOCIAL_HEALTH_WINDOW_S,
            min_failures=settings.SOCIAL_HEALTH_MIN_FAILURES,
            min_accounts=settings.SOCIAL_HEALTH_MIN_ACCOUNTS,
            recovery_successes=settings.SOCIAL_HEALTH_RECOVERY_SUCCESSES,
        )


@dataclass(frozen=True)
class HealthVerdict:
    network: str
    failing: bool
    failures: int
    accounts: int
    window_start: datetime
    first_failure_at: datetime | None
    last_failure_at: datetime | None

    @property
    def reason(self) -> str:
        return (
            f"{self.failures} transient failure(s) across {self.accounts} account(s) "
            f"since {self.window_start:%H:%M:%S} UTC"
        )


def network_health_evaluate(
    *,
    outcomes: Iterable[PublishOutcome],
    network: str,
    now: datetime,
    thresholds: HealthThresholds | None = None,
) -> HealthVerdict:
    """Whether ``network`` crossed the threshold in the window ending at ``now``.

    The window is (now - window_s, now]: a failure exactly window_s old has aged out, and
    outcomes stamped after ``now`` (clock skew between workers) are ignored."""
    limits = thresholds or HealthThresholds.from_settings()
    _require_aware(now)
    start = now - timedelta(seconds=limits.window_s)
    failures: list[PublishOutcome] = []
    for outcome in outcomes:
        _require_aware(outcome.at)
        if outcome.network != network or outcome.kind not in COUNTED:
            continue
        if start < outcome.at <= now:
            failures.append(outcome)
    accounts = {failure.account for failure in failures}
    times = sorted(failure.at for failure in failures)
    return HealthVerdict(
        network=network,
        failing=len(failures) >= limits.min_failures and len(accounts) >= limits.min_accounts,
        failures=len(failures),
        accounts=len(accounts),
        window_start=start,
        first_failure_at=times[0] if times else None,
        last_failure_at=times[-1] if times else None,
    )


def networks_failing(
    *, outcomes: Iterable[PublishOutcome], now: datetime, thresholds: HealthThresholds | None = None
) -> list[HealthVerdict]:
    """Every network over the threshold, in name order (one pass per network is fine: the
    window holds minutes of attempts, not millions)."""
    items = list(outcomes)
    verdicts = [
        network_health_evaluate(outcomes=items, network=network, now=now, thresholds=thresholds)
        for network in sorted({o.network for o in items})
    ]
    return [verdict for verdict in verdicts if verdict.failing]


def network_recovered(
    *,
    outcomes: Iterable[PublishOutcome],
    network: str,
    since: datetime,
    thresholds: HealthThresholds | None = None,
) -> bool:
    """Whether the last ``recovery_successes`` health-relevant outcomes for ``network`` after
    ``since`` (when the window opened) all succeeded. Throttled and permanent outcomes say
    nothing either way and are skipped."""
    limits = thresholds or HealthThresholds.from_settings()
    _require_aware(since)
    relevant = sorted(
        (o for o in outcomes if o.network == network and o.at > since and o.kind not in NEUTRAL),
        key=lambda o: o.at,
    )
    tail = relevant[-limits.recovery_successes :]
    return len(tail) >= limits.recovery_successes and all(o.kind == "ok" for o in tail)


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("health outcomes need timezone-aware datetimes")
