"""One module per monitor kind; KINDS maps a MonitorSource.kind to its normaliser."""

from __future__ import annotations

from outages.normalisers.alertmanager import AlertmanagerNormaliser
from outages.normalisers.base import Normaliser
from outages.normalisers.betterstack import BetterStackNormaliser
from outages.normalisers.datadog import DatadogNormaliser
from outages.normalisers.generic import GenericNormaliser
from outages.normalisers.grafana import GrafanaNormaliser
from outages.normalisers.pagerduty import PagerDutyNormaliser
from outages.normalisers.statuspage import StatuspageNormaliser
from outages.normalisers.uptime_kuma import UptimeKumaNormaliser

KINDS: dict[str, Normaliser] = {
    n.kind: n
    for n in (
        AlertmanagerNormaliser(),
        GrafanaNormaliser(),
        UptimeKumaNormaliser(),
        StatuspageNormaliser(),
        PagerDutyNormaliser(),
        DatadogNormaliser(),
        BetterStackNormaliser(),
        GenericNormaliser(),
    )
}
