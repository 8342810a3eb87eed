"""The "campaigns touched" hook that the campaigns app fills in later."""

from __future__ import annotations

from django.test import override_settings

from outages.impact import impact_counter_register, outage_impact_count


def count_by_setting(*, network: str) -> int:
    return len(network)


def broken(*, network: str) -> int:
    raise RuntimeError("campaigns table missing")


def test_unknown_until_someone_registers_a_counter() -> None:
    assert outage_impact_count(network="x") is None


@override_settings(OUTAGES_IMPACT_COUNTER="tests.outages.test_impact.count_by_setting")
def test_a_dotted_path_setting_names_the_counter() -> None:
    assert outage_impact_count(network="facebook") == 8


def test_a_registered_counter_wins_and_a_failing_one_reads_as_unknown() -> None:
    impact_counter_register(counter=lambda *, network: 3)
    try:
        assert outage_impact_count(network="x") == 3
        impact_counter_register(counter=broken)
        assert outage_impact_count(network="x") is None
    finally:
        impact_counter_register(counter=None)
