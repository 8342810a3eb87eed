"""No monitor request answers 5xx: the hostile cases the issue names, each a 4xx with its reason
or accepted with the value bounded, the receipt kept; plus a type-confusion sweep of every sample
through every normaliser."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from outages.models import OutageSignal, OutageWindow, Verdict, WebhookReceipt
from outages.normalisers import KINDS
from outages.normalisers.base import Rejected, WebhookRequest
from tests.outages.factories import SAMPLES, auth_for, sample, source_create

pytestmark = pytest.mark.django_db


def post(source: Any, body: bytes) -> Any:
    headers, query = auth_for(kind=source.kind, body=body)
    client: Any = Client(raise_request_exception=False)
    return client.post(
        f"/hooks/monitors/{source.slug}/{query}",
        data=body,
        content_type="application/json",
        **headers,
    )


def receipt_of(response: Any) -> WebhookReceipt:
    return WebhookReceipt.objects.get(pk=response.json()["receipt"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_json_nested_50000_deep_is_a_400_with_the_reason_and_kept(kind: str) -> None:
    source = source_create(kind=kind)
    for body in (b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        response = post(source, body)
        assert response.status_code == 400, response.content[:200]
        assert "nested deeper" in response.json()["detail"]
        assert receipt_of(response).verdict == Verdict.MALFORMED
        assert receipt_of(response).size == len(body)


def test_nul_in_an_annotation_and_a_fingerprint_is_applied_with_the_nul_replaced() -> None:
    source = source_create(kind="alertmanager", default_network="facebook")
    payload = sample("alertmanager", "firing")
    payload["alerts"] = payload["alerts"][:1]
    payload["alerts"][0]["fingerprint"] = "abc\x00def"
    payload["alerts"][0]["annotations"]["summary"] = "Graph API\x00 down"
    payload["alerts"][0]["labels"]["instance\x00"] = "pod\x00"
    response = post(source, json.dumps(payload).encode())
    assert response.status_code == 200, response.content
    signal = OutageSignal.objects.get()
    assert signal.incident_key == "abc\ufffddef"
    assert signal.summary == "Graph API\ufffd down"
    assert "\\u0000" in receipt_of(response).body  # the receipt keeps what was sent


def test_a_raw_nul_byte_in_the_body_is_a_400_and_kept() -> None:
    source = source_create(kind="alertmanager")
    body = (
        json.dumps(sample("alertmanager", "firing")).encode().replace(b"firing", b"fir\x00ing", 1)
    )
    response = post(source, body)
    assert response.status_code == 400
    assert "\ufffd" in receipt_of(response).body


@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
def test_a_fingerprint_over_255_characters_is_applied_under_a_bounded_key(kind: str) -> None:
    source = source_create(kind=kind, default_network="facebook")
    payload = sample(kind, "firing")
    payload["alerts"] = payload["alerts"][:1]
    payload["alerts"][0]["fingerprint"] = "f" * 300
    response = post(source, json.dumps(payload).encode())
    assert response.status_code == 200, response.content
    key = OutageSignal.objects.get().incident_key
    assert len(key) <= 255
    assert response.json()["signals"][0]["incident_key"] == key
    # The resolve with the same long key finds the same signal.
    resolved = sample(kind, "resolved")
    resolved["alerts"] = resolved["alerts"][:1]
    resolved["alerts"][0]["fingerprint"] = "f" * 300
    assert post(source, json.dumps(resolved).encode()).status_code == 200
    assert not OutageWindow.objects.filter(state="open").exists()


def test_a_datadog_cycle_key_over_255_characters_is_applied_under_a_bounded_key() -> None:
    source = source_create(kind="datadog", default_network="x")
    payload = sample("datadog", "triggered")
    payload["alert_cycle_key"] = "9" * 400
    assert post(source, json.dumps(payload).encode()).status_code == 200
    recovered = sample("datadog", "recovered")
    recovered["alert_cycle_key"] = "9" * 400
    assert post(source, json.dumps(recovered).encode()).status_code == 200
    signal = OutageSignal.objects.get()
    assert len(signal.incident_key) <= 255
    assert signal.state == "resolved"


@pytest.mark.parametrize(
    "relationships",
    [
        [],
        [{"monitor": {"data": {"id": "1"}}}],
        "monitor",
        7,
        {"monitor": []},
        {"monitor": {"data": []}},
    ],
)
def test_better_stack_relationships_of_any_shape_never_fail(relationships: Any) -> None:
    source = source_create(kind="betterstack", default_network="x")
    payload = sample("betterstack", "started")
    payload["data"]["relationships"] = relationships
    response = post(source, json.dumps(payload).encode())
    # The monitor id is optional: the incident is applied whatever shape the link has.
    assert response.status_code == 200, response.content
    assert receipt_of(response).verdict == Verdict.ACCEPTED
    assert OutageWindow.objects.filter(network="x", state="open").exists()
    if not isinstance(relationships, dict):
        assert "relationships is not an object" in response.json()["detail"]


# --- type-confusion sweep, at the normaliser (no HTTP, so thousands of cases stay cheap) ---------

HOSTILE_VALUES: list[Any] = [
    None,
    [],
    {},
    0,
    -1,
    1e300,
    True,
    "",
    "x" * 300,
    "\ufffd",
    [{}],
    {"a": []},
]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:2]):
            yield from _paths(inner, (*path, index))


def _with(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copied = copy.deepcopy(value)
    target = copied
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return copied


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_field_of_every_sample_with_a_value_of_another_type_is_refused_or_bounded(
    kind: str,
) -> None:
    normaliser = KINDS[kind]
    checked = 0
    for path_to_sample in sorted((SAMPLES / kind).glob("*.json")):
        base = json.loads(path_to_sample.read_bytes())
        for path in _paths(base):
            for hostile in HOSTILE_VALUES:
                payload = _with(base, path, hostile)
                request = WebhookRequest(
                    method="POST",
                    headers={},
                    query={},
                    body=json.dumps(payload).encode(),
                    content_type="application/json",
                    received_at=timezone.now(),
                )
                try:
                    result = normaliser.normalise(
                        payload=normaliser.parse(request=request), options={}
                    )
                except Rejected as exc:
                    assert 400 <= exc.status_code < 500
                    continue
                except Exception as exc:  # pragma: no cover - the assertion reports it
                    raise AssertionError(
                        f"{path_to_sample.name} {path!r}={hostile!r}: {exc!r}"
                    ) from exc
                checked += 1
                for signal in result.signals:
                    assert isinstance(signal.incident_key, str) and signal.incident_key
                    assert isinstance(signal.summary, str) and len(signal.summary) <= 2000
                    assert all(isinstance(v, str) for v in signal.attributes.values())
    assert checked
