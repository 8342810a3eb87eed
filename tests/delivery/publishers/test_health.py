from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delivery.publishers.base import OutcomeKind
from delivery.publishers.health import (
    HealthThresholds,
    PublishOutcome,
    network_health_evaluate,
    network_recovered,
    networks_failing,
)

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LIMITS = HealthThresholds(window_s=180, min_failures=5, min_accounts=2, recovery_successes=2)


def fails(
    n: int,
    *,
    accounts: tuple[str, ...] = ("a", "b"),
    kind: OutcomeKind = "transient",
    network: str = "facebook",
    age_s: float = 10,
) -> list[PublishOutcome]:
    return [
        PublishOutcome(
            at=NOW - timedelta(seconds=age_s + i),
            network=network,
            account=accounts[i % len(accounts)],
            kind=kind,
        )
        for i in range(n)
    ]


def verdict(outcomes: list[PublishOutcome], network: str = "facebook") -> bool:
    return network_health_evaluate(
        outcomes=outcomes, network=network, now=NOW, thresholds=LIMITS
    ).failing


def test_five_transient_failures_across_two_accounts_cross_the_threshold() -> None:
    result = network_health_evaluate(
        outcomes=fails(5), network="facebook", now=NOW, thresholds=LIMITS
    )
    assert result.failing
    assert (result.failures, result.accounts) == (5, 2)
    assert "5 transient failure(s) across 2 account(s)" in result.reason


def test_four_failures_are_not_enough() -> None:
    assert not verdict(fails(4))


def test_one_broken_account_never_declares_the_network_down() -> None:
    assert not verdict(fails(50, accounts=("a",)))


def test_unknown_outcomes_count_like_transient_failures() -> None:
    assert verdict(fails(3) + fails(2, kind="unknown"))


@pytest.mark.parametrize("kind", ["throttled", "permanent", "ok"])
def test_throttled_permanent_and_successes_never_count(kind: OutcomeKind) -> None:
    assert not verdict(fails(4) + fails(20, kind=kind))


def test_a_failure_exactly_at_the_window_edge_has_aged_out() -> None:
    edge = [
        PublishOutcome(
            at=NOW - timedelta(seconds=180), network="facebook", account="c", kind="transient"
        )
    ]
    assert not verdict(fails(4) + edge)
    inside = [
        PublishOutcome(
            at=NOW - timedelta(seconds=179.999), network="facebook", account="c", kind="transient"
        )
    ]
    assert verdict(fails(4) + inside)


def test_outcomes_from_the_future_are_ignored() -> None:
    future = [
        PublishOutcome(
            at=NOW + timedelta(seconds=5), network="facebook", account="c", kind="transient"
        )
    ]
    assert not verdict(fails(4) + future)


def test_other_networks_failures_do_not_count() -> None:
    assert not verdict(fails(4) + fails(5, network="x"))
    failing = networks_failing(
        outcomes=fails(5) + fails(5, network="instagram") + fails(4, network="x"),
        now=NOW,
        thresholds=LIMITS,
    )
    assert [v.network for v in failing] == ["facebook", "instagram"]


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        network_health_evaluate(outcomes=[], network="facebook", now=naive, thresholds=LIMITS)


def test_thresholds_come_from_settings(settings: object) -> None:
    settings.SOCIAL_HEALTH_MIN_FAILURES = 2  # type: ignore[attr-defined]
    settings.SOCIAL_HEALTH_MIN_ACCOUNTS = 1  # type: ignore[attr-defined]
    assert network_health_evaluate(
        outcomes=fails(2, accounts=("a",)), network="facebook", now=NOW
    ).failing


def test_recovery_needs_the_latest_relevant_outcomes_to_succeed() -> None:
    opened = NOW - timedelta(minutes=5)

    def at(seconds: int, kind: OutcomeKind) -> PublishOutcome:
        return PublishOutcome(
            at=opened + timedelta(seconds=seconds), network="facebook", account="a", kind=kind
        )

    def recovered(outcomes: list[PublishOutcome]) -> bool:
        return network_recovered(
            outcomes=outcomes, network="facebook", since=opened, thresholds=LIMITS
        )

    assert not recovered([])
    assert not recovered([at(1, "ok")])
    assert recovered([at(1, "transient"), at(2, "ok"), at(3, "ok")])
    assert not recovered([at(1, "ok"), at(2, "ok"), at(3, "transient")])
    # Throttling says nothing about health either way.
    assert recovered([at(1, "ok"), at(2, "throttled"), at(3, "ok"), at(4, "permanent")])
    # Successes before the window opened are not evidence of recovery.
    assert not recovered([at(-10, "ok"), at(-5, "ok")])
