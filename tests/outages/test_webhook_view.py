"""The webhook edge: every hostile request gets a clear 4xx and its receipt is kept."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from outages.credentials import credential_rotate, source_cache_clear
from outages.models import OutageWindow, Verdict, WebhookReceipt
from outages.normalisers.base import hmac_hex
from outages.normalisers.generic import generic_sign
from tests.outages.factories import (
    SECRET,
    auth_for,
    hook_post,
    sample,
    sample_bytes,
    source_create,
)

pytestmark = pytest.mark.django_db


def receipt_of(response: Any) -> WebhookReceipt:
    return WebhookReceipt.objects.get(pk=response.json()["receipt"])


def test_an_unknown_slug_is_404_and_the_receipt_is_kept(client: Any) -> None:
    response = client.post("/hooks/monitors/nobody/", data=b"{}", content_type="application/json")
    assert response.status_code == 404
    receipt = receipt_of(response)
    assert (receipt.verdict, receipt.source, receipt.slug) == (Verdict.NOT_FOUND, None, "nobody")


def test_an_inactive_source_is_404(client: Any) -> None:
    source = source_create(active=False)
    assert hook_post(client, source, sample_bytes("generic", "firing")).status_code == 404


def test_a_get_is_405_with_allow_header_and_kept(client: Any) -> None:
    source = source_create()
    response = client.get(f"/hooks/monitors/{source.slug}/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert receipt_of(response).verdict == Verdict.METHOD_NOT_ALLOWED


@override_settings(OUTAGES_WEBHOOK_MAX_BODY_BYTES=2048, OUTAGES_RECEIPT_BODY_BYTES=100)
def test_a_body_over_the_limit_is_413_and_the_receipt_keeps_a_capped_body(client: Any) -> None:
    source = source_create(kind="alertmanager")
    body = json.dumps({"alerts": [], "pad": "x" * 5000}).encode()
    response = hook_post(client, source, body)
    assert response.status_code == 413
    receipt = receipt_of(response)
    assert receipt.verdict == Verdict.TOO_LARGE
    assert receipt.size == 2049  # read at most the cap + 1 bytes
    assert len(receipt.body) == 100
    assert receipt.body_truncated


def test_a_malformed_form_body_is_400_naming_the_problem(client: Any) -> None:
    source = source_create(kind="datadog")
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data="data=%7Bnot-json",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )
    assert response.status_code == 400
    assert "form field 'data' is not valid JSON" in response.json()["detail"]


def test_a_form_encoded_datadog_payload_is_accepted(client: Any) -> None:
    from urllib.parse import urlencode

    source = source_create(kind="datadog")
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=urlencode(sample("datadog", "triggered")),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )
    assert response.status_code == 200, response.json()
    assert OutageWindow.objects.get().network == "linkedin"  # from tags network:linkedin


def test_uptime_kuma_multipart_form_data_is_accepted(client: Any) -> None:
    source = source_create(kind="uptime_kuma", default_network="whatsapp")
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data={"data": json.dumps(sample("uptime_kuma", "down"))},
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )
    assert response.status_code == 200, response.json()
    assert OutageWindow.objects.get().network == "whatsapp"


def test_basic_auth_with_the_secret_as_password_is_accepted(client: Any) -> None:
    import base64

    source = source_create(kind="alertmanager")
    token = base64.b64encode(f"alertmanager:{SECRET}".encode()).decode()
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=sample_bytes("alertmanager", "firing"),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {token}",
    )
    assert response.status_code == 200
    assert receipt_of(response).headers["Authorization"] == "Basic [redacted]"


def test_a_url_token_is_redacted_on_the_receipt(client: Any) -> None:
    source = source_create(kind="statuspage")
    response = hook_post(client, source, sample_bytes("statuspage", "component_major_outage"))
    assert response.status_code == 200
    assert SECRET not in receipt_of(response).query


def test_a_firing_alert_that_maps_to_no_network_is_202_and_the_receipt_says_so(
    client: Any,
) -> None:
    source = source_create(kind="alertmanager", default_network="")
    body = json.dumps(
        {
            "version": "4",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "DiskFull"}, "fingerprint": "f1"}
            ],
        }
    ).encode()
    response = hook_post(client, source, body)
    assert response.status_code == 202
    receipt = receipt_of(response)
    assert receipt.verdict == Verdict.UNMAPPED
    assert "map to no network" in receipt.reason
    assert receipt.signals[0]["outcome"] == "unmapped"
    assert not OutageWindow.objects.exists()


def test_mapping_rules_pick_the_network_per_alert(client: Any) -> None:
    source = source_create(
        kind="uptime_kuma",
        default_network="",
        mapping_rules=[{"match": "monitor.name", "regex": "(?i)^whatsapp", "network": "whatsapp"}],
    )
    assert hook_post(client, source, sample_bytes("uptime_kuma", "down")).status_code == 200
    assert OutageWindow.objects.get().network == "whatsapp"


@pytest.mark.parametrize("status", [7, -1])
def test_unknown_kuma_status_values_are_accepted_and_ignored(client: Any, status: Any) -> None:
    source = source_create(kind="uptime_kuma")
    payload = sample("uptime_kuma", "down")
    payload["heartbeat"]["status"] = status
    response = hook_post(client, source, json.dumps(payload).encode())
    assert response.status_code == 202
    receipt = receipt_of(response)
    assert receipt.verdict == Verdict.IGNORED
    assert "unknown heartbeat status" in receipt.reason
    assert not OutageWindow.objects.exists()


def test_the_kuma_test_button_is_accepted_without_opening_anything(client: Any) -> None:
    source = source_create(kind="uptime_kuma")
    response = hook_post(client, source, sample_bytes("uptime_kuma", "test"))
    assert response.status_code == 202
    assert "test notification" in receipt_of(response).reason


def test_a_pagerduty_redelivery_is_200_and_changes_nothing(client: Any) -> None:
    source = source_create(kind="pagerduty", default_network="x")
    body = sample_bytes("pagerduty", "triggered")
    headers, _ = auth_for(kind="pagerduty", body=body, webhook_id="d1f0-replay")
    first = client.post(
        f"/hooks/monitors/{source.slug}/", data=body, content_type="application/json", **headers
    )
    again = client.post(
        f"/hooks/monitors/{source.slug}/", data=body, content_type="application/json", **headers
    )
    assert first.status_code == 200
    assert again.status_code == 200
    assert receipt_of(again).verdict == Verdict.DUPLICATE


def test_pagerduty_accepts_any_of_several_signatures_during_rotation(client: Any) -> None:
    source = source_create(kind="pagerduty", default_network="x")
    body = sample_bytes("pagerduty", "triggered")
    header = f"v1={hmac_hex('old-secret', body)},v1={hmac_hex(SECRET, body)}"
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=body,
        content_type="application/json",
        HTTP_X_PAGERDUTY_SIGNATURE=header,
        HTTP_X_WEBHOOK_ID="abc",
    )
    assert response.status_code == 200


def test_a_replayed_generic_delivery_is_401(client: Any) -> None:
    source = source_create()
    body = sample_bytes("generic", "firing")
    signature = generic_sign(secret=SECRET, body=body, timestamp=int(time.time()))
    kwargs = {"content_type": "application/json", "HTTP_X_CONTINUITY_SIGNATURE": signature}
    assert client.post(f"/hooks/monitors/{source.slug}/", data=body, **kwargs).status_code == 200
    again = client.post(f"/hooks/monitors/{source.slug}/", data=body, **kwargs)
    assert again.status_code == 401
    assert "already processed" in again.json()["detail"]


def test_a_stale_generic_timestamp_is_401(client: Any) -> None:
    source = source_create()
    body = sample_bytes("generic", "firing")
    headers, _ = auth_for(kind="generic", body=body, timestamp=int(time.time()) - 301)
    response = client.post(
        f"/hooks/monitors/{source.slug}/", data=body, content_type="application/json", **headers
    )
    assert response.status_code == 401
    assert receipt_of(response).verdict == Verdict.REPLAYED
    assert "stale timestamp" in response.json()["detail"]


def test_a_tampered_generic_body_is_401(client: Any) -> None:
    source = source_create()
    body = sample_bytes("generic", "firing")
    headers, _ = auth_for(kind="generic", body=body)
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=body.replace(b"threads", b"youtube"),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 401


def test_grafana_signs_timestamp_colon_body_when_a_timestamp_header_is_configured(
    client: Any,
) -> None:
    source = source_create(
        kind="grafana", options={"timestamp_header": "X-Grafana-Alerting-Timestamp"}
    )
    body = sample_bytes("grafana", "firing")
    now = str(int(time.time()))
    ok = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=body,
        content_type="application/json",
        HTTP_X_GRAFANA_ALERTING_SIGNATURE=hmac_hex(SECRET, f"{now}:".encode() + body),
        HTTP_X_GRAFANA_ALERTING_TIMESTAMP=now,
    )
    assert ok.status_code == 200, ok.json()
    assert receipt_of(ok).headers["X-Grafana-Alerting-Timestamp"] == now
    old = str(int(time.time()) - 1000)
    stale = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=body,
        content_type="application/json",
        HTTP_X_GRAFANA_ALERTING_SIGNATURE=hmac_hex(SECRET, f"{old}:".encode() + body),
        HTTP_X_GRAFANA_ALERTING_TIMESTAMP=old,
    )
    assert stale.status_code == 401


def test_a_rotated_secret_keeps_working_during_the_overlap_then_stops(client: Any) -> None:
    source = source_create(kind="alertmanager")
    issued = credential_rotate(source=source, overlap=timedelta(hours=1))
    body = sample_bytes("alertmanager", "firing")
    for secret in (SECRET, issued.secret):
        response = client.post(
            f"/hooks/monitors/{source.slug}/",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        assert response.status_code == 200
    source.credentials.exclude(pk=issued.credential.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    source_cache_clear()  # a bulk update sends no signal; other processes wait out the TTL
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )
    assert response.status_code == 401


def test_secrets_are_stored_encrypted_not_in_clear() -> None:
    source = source_create()
    credential = source.credentials.get()
    assert SECRET not in credential.secret_encrypted
    assert credential.hint == SECRET[-4:]


def test_the_webhook_answers_within_a_bounded_number_of_queries(
    client: Any, django_assert_max_num_queries: Any
) -> None:
    source = source_create(kind="alertmanager")
    body = sample_bytes("alertmanager", "firing")
    hook_post(client, source, body)
    # Receipt insert, then one transaction: per alert one counting UPDATE (a repeat),
    # and the receipt's verdict. The source and its secrets come from the per-process cache.
    with django_assert_max_num_queries(6):
        assert hook_post(client, source, body).status_code == 200


def test_binary_garbage_is_400_and_the_receipt_keeps_a_readable_copy(client: Any) -> None:
    source = source_create(kind="alertmanager")
    response = hook_post(client, source, b"\x00\xff\xfe garbage \x00")
    assert response.status_code == 400
    receipt = receipt_of(response)
    assert receipt.verdict == Verdict.MALFORMED
    assert "garbage" in receipt.body
    assert "\x00" not in receipt.body


@pytest.mark.parametrize("method", ["put", "delete", "patch", "options"])
def test_other_methods_are_405(client: Any, method: str) -> None:
    source = source_create()
    response = getattr(client, method)(f"/hooks/monitors/{source.slug}/")
    assert response.status_code == 405
    assert receipt_of(response).method == method.upper()


def test_an_unexpected_failure_marks_the_receipt_and_answers_500(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outages import intake

    def explode(**_: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(intake, "_batch_apply", explode)
    client.raise_request_exception = False
    source = source_create(kind="alertmanager")
    response = hook_post(client, source, sample_bytes("alertmanager", "firing"))
    assert response.status_code == 500
    receipt = WebhookReceipt.objects.get()
    assert receipt.verdict == Verdict.ERROR
    assert "database went away" in receipt.reason


def test_an_alert_without_fingerprint_is_keyed_by_its_labels(client: Any) -> None:
    source = source_create(kind="alertmanager")
    payload = sample("alertmanager", "firing")
    for alert in payload["alerts"]:
        del alert["fingerprint"]
    body = json.dumps(payload).encode()
    for _ in range(2):
        assert hook_post(client, source, body).status_code == 200
    assert OutageWindow.objects.get().holds.count() == 2


def test_a_json_body_sent_as_a_form_by_curl_d_is_read_as_json(client: Any) -> None:
    source = source_create(kind="uptime_kuma")
    response = client.post(
        f"/hooks/monitors/{source.slug}/",
        data=sample_bytes("uptime_kuma", "down"),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
    )
    assert response.status_code == 200, response.json()
