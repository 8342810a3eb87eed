"""Episodes per sender: what a repeat, a resolve, a reopen and a test notification do, end to end.

Payloads are the senders' own formats (tests/outages/samples/ and samples/replay/), changed only
where a scenario needs another time or status.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest
from django.test import Client

from outages.models import OutageSignal, OutageWindow, Verdict, WebhookReceipt
from tests.outages.factories import SAMPLES, auth_for, hook_post, sample, source_create

pytestmark = pytest.mark.django_db

REPLAY = SAMPLES / "replay"


def replay(name: str) -> dict[str, Any]:
    return json.loads((REPLAY / f"{name}.json").read_bytes())


def post_json(client: Client, source: Any, payload: dict[str, Any]) -> Any:
    return hook_post(client, source, json.dumps(payload).encode())


def am_alert(
    *,
    service: str,
    status: str = "firing",
    starts: str = "2026-11-24T08:00:00Z",
    ends: str = "0001-01-01T00:00:00Z",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "SocialDown", "service": service},
        "annotations": {"summary": f"{service} is down"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": f"fp-{service}",
    }


def am_group(*alerts: dict[str, Any]) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="SocialDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "continuity",
        "groupLabels": {"alertname": "SocialDown"},
        "commonLabels": {"alertname": "SocialDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": list(alerts),
    }


RULES = [
    {"match": "labels.service", "equals": name, "network": name}
    for name in ("facebook", "instagram", "x")
]


def open_networks() -> set[str]:
    return set(OutageWindow.objects.filter(state="open").values_list("network", flat=True))


# --- Alertmanager --------------------------------------------------------------------------------


def test_an_alertmanager_resolve_with_an_earlier_merged_start_closes_the_window(
    client: Client,
) -> None:
    source = source_create(kind="alertmanager", default_network="", mapping_rules=RULES)
    assert post_json(client, source, am_group(am_alert(service="facebook"))).status_code == 200
    # The same alert re-posted with an earlier startsAt: Alertmanager keeps the earliest, so the
    # repeats and the resolve carry it.
    earlier = am_alert(service="facebook", starts="2026-11-24T07:30:00Z")
    for _ in range(2):
        assert post_json(client, source, am_group(earlier)).json()["signals"][0]["outcome"] == (
            "duplicate"
        )
    resolved = am_alert(
        service="facebook",
        status="resolved",
        starts="2026-11-24T07:30:00Z",
        ends="2026-11-24T08:40:00Z",
    )
    response = post_json(client, source, am_group(resolved))
    assert response.status_code == 200
    assert response.json()["signals"][0]["outcome"] == "closed"
    assert OutageWindow.objects.get().state == "resolved"


def test_two_services_firing_together_open_two_windows_and_one_resolve_closes_both(
    client: Client,
) -> None:
    source = source_create(kind="alertmanager", default_network="", mapping_rules=RULES)
    group = am_group(am_alert(service="instagram"), am_alert(service="x"))
    assert post_json(client, source, group).status_code == 200
    assert open_networks() == {"instagram", "x"}
    assert post_json(client, source, group).status_code == 200  # a repeat
    assert OutageWindow.objects.count() == 2
    resolved = am_group(
        *(
            am_alert(service=s, status="resolved", ends="2026-11-24T09:00:00Z")
            for s in ("instagram", "x")
        )
    )
    outcomes = [s["outcome"] for s in post_json(client, source, resolved).json()["signals"]]
    assert outcomes == ["closed", "closed"]
    assert open_networks() == set()


def test_an_alertmanager_resolve_that_ended_before_the_current_episode_began_is_stale(
    client: Client,
) -> None:
    source = source_create(kind="alertmanager", default_network="", mapping_rules=RULES)
    post_json(client, source, am_group(am_alert(service="x", starts="2026-11-24T10:00:00Z")))
    old = am_alert(
        service="x", status="resolved", starts="2026-11-24T08:00:00Z", ends="2026-11-24T09:00:00Z"
    )
    assert post_json(client, source, am_group(old)).json()["signals"][0]["outcome"] == "stale"
    assert open_networks() == {"x"}


# --- PagerDuty -----------------------------------------------------------------------------------


def pd_post(client: Any, source: Any, payload: dict[str, Any], webhook_id: str) -> Any:
    body = json.dumps(payload).encode()
    headers, _ = auth_for(kind="pagerduty", body=body, webhook_id=webhook_id)
    return client.post(
        f"/hooks/monitors/{source.slug}/", data=body, content_type="application/json", **headers
    )


def test_a_pagerduty_reopen_after_its_resolve_opens_the_outage_again(client: Client) -> None:
    source = source_create(kind="pagerduty", default_network="x")
    assert pd_post(client, source, sample("pagerduty", "triggered"), "d-1").status_code == 200
    assert pd_post(client, source, sample("pagerduty", "resolved"), "d-2").status_code == 200
    assert open_networks() == set()
    response = pd_post(client, source, replay("pagerduty_reopened"), "d-3")
    assert response.status_code == 200
    assert response.json()["signals"][0]["outcome"] in ("opened", "reopened")
    assert open_networks() == {"x"}
    signal = OutageSignal.objects.get()
    assert signal.started_at == datetime.fromisoformat("2026-11-24T09:15:01+00:00")
    # The incident's resolve from before the reopen, delivered again late, does not end it.
    late = pd_post(client, source, sample("pagerduty", "resolved"), "d-4")
    assert late.json()["signals"][0]["outcome"] == "stale"
    assert open_networks() == {"x"}


def test_a_pagerduty_reopen_seen_before_the_resolve_it_follows_keeps_the_outage(
    client: Client,
) -> None:
    source = source_create(kind="pagerduty", default_network="x")
    pd_post(client, source, sample("pagerduty", "triggered"), "d-1")
    assert pd_post(client, source, replay("pagerduty_reopened"), "d-3").status_code == 200
    # The resolve (08:50) that came before the reopen (09:15) arrives last.
    late = pd_post(client, source, sample("pagerduty", "resolved"), "d-2")
    assert late.json()["signals"][0]["outcome"] == "stale"
    assert open_networks() == {"x"}


def test_a_byte_identical_pagerduty_redelivery_is_200_and_ignored(client: Client) -> None:
    source = source_create(kind="pagerduty", default_network="x")
    first = pd_post(client, source, sample("pagerduty", "triggered"), "same-id")
    pd_post(client, source, sample("pagerduty", "resolved"), "other-id")
    again = pd_post(client, source, sample("pagerduty", "triggered"), "same-id")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["verdict"] == Verdict.DUPLICATE
    assert open_networks() == set()  # the redelivered trigger did not reopen anything
    assert WebhookReceipt.objects.filter(verdict=Verdict.DUPLICATE).count() == 1


# --- Grafana -------------------------------------------------------------------------------------


def test_the_grafana_contact_point_test_is_202_and_changes_nothing(client: Client) -> None:
    source = source_create(kind="grafana", default_network="facebook")
    response = post_json(client, source, replay("grafana_contact_point_test"))
    assert response.status_code == 202, response.json()
    assert response.json()["verdict"] == Verdict.IGNORED
    assert "test notification" in response.json()["detail"]
    assert not OutageSignal.objects.exists()


def test_grafanas_builtin_test_alert_is_202(client: Client) -> None:
    source = source_create(kind="grafana", default_network="facebook")
    payload = sample("grafana", "firing")
    payload["alerts"][0]["labels"] = {"alertname": "TestAlert", "instance": "Grafana"}
    assert post_json(client, source, payload).status_code == 202
    assert not OutageWindow.objects.exists()


def test_a_grafana_alert_without_status_and_real_labels_is_still_a_400(client: Client) -> None:
    source = source_create(kind="grafana", default_network="facebook")
    payload = sample("grafana", "firing")
    del payload["alerts"][0]["status"]
    response = post_json(client, source, payload)
    assert response.status_code == 400
    assert "status" in response.json()["detail"]


# --- Statuspage ----------------------------------------------------------------------------------


def test_a_statuspage_incident_with_impact_none_and_operational_components_is_no_outage(
    client: Client,
) -> None:
    source = source_create(kind="statuspage", default_network="instagram")
    response = post_json(client, source, replay("statuspage_incident_impact_none"))
    assert response.status_code == 202, response.json()
    assert "not an outage" in response.json()["detail"]
    assert not OutageWindow.objects.exists()
    assert not OutageSignal.objects.exists()  # nothing remembered that could hide a later firing
    # Later the same incident turns into a real outage: it opens.
    upgraded = replay("statuspage_incident_impact_none")
    upgraded["incident"]["impact"] = "major"
    upgraded["incident"]["components"][0]["status"] = "major_outage"
    assert post_json(client, source, upgraded).status_code == 200
    assert open_networks() == {"instagram"}


def test_an_incident_downgraded_to_impact_none_releases_its_hold(client: Client) -> None:
    source = source_create(kind="statuspage", default_network="instagram")
    firing = replay("statuspage_incident_impact_none")
    firing["incident"]["impact"] = "major"
    firing["incident"]["components"][0]["status"] = "partial_outage"
    post_json(client, source, firing)
    assert open_networks() == {"instagram"}
    downgraded = replay("statuspage_incident_impact_none")
    downgraded["incident"]["updated_at"] = "2026-11-24T08:30:00Z"
    assert post_json(client, source, downgraded).status_code == 200
    assert open_networks() == set()


def test_a_statuspage_resolved_update_releases_the_component_signal_it_reports_operational(
    client: Client,
) -> None:
    source = source_create(kind="statuspage", default_network="instagram")
    component = sample("statuspage", "component_major_outage")
    assert post_json(client, source, component).status_code == 200
    incident = replay("statuspage_incident_resolved_operational")
    firing = copy.deepcopy(incident)
    firing["incident"].update(status="identified", resolved_at=None)
    firing["incident"]["components"][0]["status"] = "major_outage"
    firing["incident"]["incident_updates"][0]["affected_components"][0]["new_status"] = (
        "major_outage"
    )
    post_json(client, source, firing)
    assert OutageSignal.objects.filter(state="firing").count() == 2  # component + incident
    # The component's own "operational" component_update never arrives; the incident's
    # resolved update says it is operational.
    response = post_json(client, source, incident)
    assert response.status_code == 200
    outcomes = {s["incident_key"]: s["outcome"] for s in response.json()["signals"]}
    assert set(outcomes) == {"incident:z3lct0r596n4", "component:rb5wq1dczvbm"}
    assert sorted(outcomes.values()) == ["closed", "released"]
    assert open_networks() == set()


def test_a_component_reported_operational_by_an_incident_is_not_remembered(
    client: Client,
) -> None:
    source = source_create(kind="statuspage", default_network="instagram")
    post_json(client, source, replay("statuspage_incident_resolved_operational"))
    # The component breaks later (its update dated before the incident's resolve, as a
    # clock-skewed page may send): it still opens, no earlier report hides it.
    component = sample("statuspage", "component_major_outage")
    assert post_json(client, source, component).status_code == 200
    assert open_networks() == {"instagram"}


# --- Uptime Kuma ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["0", "down", None, True, 0.0, [0]])
def test_an_uptime_kuma_status_of_the_wrong_type_is_400_with_the_reason(
    client: Client, status: Any
) -> None:
    source = source_create(kind="uptime_kuma")
    payload = sample("uptime_kuma", "down")
    payload["heartbeat"]["status"] = status
    response = post_json(client, source, payload)
    assert response.status_code == 400
    assert "heartbeat.status" in response.json()["detail"]
    assert WebhookReceipt.objects.get(pk=response.json()["receipt"]).verdict == Verdict.INVALID
    assert not OutageWindow.objects.exists()


def legacy_grafana(
    state: str, *, title: str = "[Alerting] Instagram publish errors"
) -> dict[str, Any]:
    # Grafana's legacy alerting webhook body (before unified alerting).
    return {
        "dashboardId": 1,
        "evalMatches": [{"value": 100, "metric": "errors", "tags": None}],
        "imageUrl": "https://grafana.example/render/d-solo/1.png",
        "message": "Instagram publishing returns 5xx",
        "orgId": 1,
        "panelId": 2,
        "ruleId": 7,
        "ruleName": "Instagram publish errors",
        "ruleUrl": "https://grafana.example/d/social?panelId=2",
        "state": state,
        "tags": {"network": "instagram"},
        "title": title,
    }


def test_grafana_legacy_alerting_fires_and_resolves_by_rule(client: Client) -> None:
    source = source_create(kind="grafana", default_network="")
    assert post_json(client, source, legacy_grafana("alerting")).status_code == 200
    assert open_networks() == {"instagram"}
    assert post_json(client, source, legacy_grafana("no_data")).status_code == 202
    assert (
        post_json(client, source, legacy_grafana("ok", title="[OK] Instagram")).status_code == 200
    )
    assert open_networks() == set()


def test_grafana_legacy_test_notification_is_202(client: Client) -> None:
    source = source_create(kind="grafana", default_network="instagram")
    test = legacy_grafana("alerting", title="[Alerting] Test notification")
    assert post_json(client, source, test).status_code == 202
    assert not OutageWindow.objects.exists()
