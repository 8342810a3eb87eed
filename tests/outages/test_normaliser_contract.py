"""Every monitor kind against the shared contract, with its samples."""

from __future__ import annotations

from tests.outages.contract import NormaliserContract

AM_KEYS = ("7a1f3c2e9b0d4e51", "c4d2e8a1f6b3907e")


class TestAlertmanager(NormaliserContract):
    kind = "alertmanager"
    pair = ("firing", "resolved")
    expected = {
        "firing": [("firing", AM_KEYS[0]), ("firing", AM_KEYS[1])],
        "resolved": [("resolved", AM_KEYS[0]), ("resolved", AM_KEYS[1])],
        "truncated": [("firing", AM_KEYS[0])],
    }


class TestGrafana(NormaliserContract):
    kind = "grafana"
    pair = ("firing", "resolved")
    expected = {
        "firing": [("firing", "57c6d9296de2ad39")],
        "resolved": [("resolved", "57c6d9296de2ad39")],
    }


class TestUptimeKuma(NormaliserContract):
    kind = "uptime_kuma"
    pair = ("down", "up")
    expected = {
        "down": [("firing", "monitor:12")],
        "up": [("resolved", "monitor:12")],
        "pending": [],
        "maintenance": [],
        "test": [],
    }


class TestStatuspage(NormaliserContract):
    kind = "statuspage"
    pair = ("component_major_outage", "component_operational")
    expected = {
        "component_major_outage": [("firing", "component:rb5wq1dczvbm")],
        "component_operational": [("resolved", "component:rb5wq1dczvbm")],
        "incident_investigating": [("firing", "incident:lbkhbwn21v5q")],
        "incident_resolved": [("resolved", "incident:lbkhbwn21v5q")],
        "instatus_component_majoroutage": [("firing", "component:ckcomp1")],
    }


class TestPagerDuty(NormaliserContract):
    kind = "pagerduty"
    pair = ("triggered", "resolved")
    expected = {
        "triggered": [("firing", "incident:PGR0VU2")],
        "acknowledged": [("firing", "incident:PGR0VU2")],
        "resolved": [("resolved", "incident:PGR0VU2")],
        "ping": [],
    }


class TestDatadog(NormaliserContract):
    kind = "datadog"
    pair = ("triggered", "recovered")
    expected = {
        "triggered": [("firing", "cycle:7392649233117200001")],
        "recovered": [("resolved", "cycle:7392649233117200001")],
    }


class TestBetterStack(NormaliserContract):
    kind = "betterstack"
    pair = ("started", "resolved")
    expected = {
        "started": [("firing", "incident:123456789")],
        "resolved": [("resolved", "incident:123456789")],
    }


class TestGeneric(NormaliserContract):
    kind = "generic"
    pair = ("firing", "resolved")
    expected = {
        "firing": [("firing", "threads-publish-5xx")],
        "resolved": [("resolved", "threads-publish-5xx")],
    }
