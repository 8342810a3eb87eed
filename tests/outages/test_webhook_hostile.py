"""The monitor webhook under hostile input: never a 5xx, the receipt always kept, no window
opened or closed on a refusal. Most requests are authenticated, so hostility reaches the parsers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client
from hypothesis import event, given
from hypothesis import strategies as st

from outages.models import (
    DeliverySeen,
    OutageSignal,
    OutageWindow,
    Verdict,
    WebhookReceipt,
    WindowEvent,
)
from outages.normalisers import KINDS
from outages.normalisers.base import hmac_hex
from tests.fuzz import FUZZ, HOSTILE_TEXT, bodies, counts, dumps, json_values
from tests.outages.factories import (
    SAMPLES,
    SECRET,
    auth_for,
    sample,
    sample_bytes,
    source_create,
)

pytestmark = pytest.mark.django_db

STATE = counts(OutageWindow, OutageSignal, WindowEvent, DeliverySeen)


def client() -> Client:
    return Client(raise_request_exception=False)


def post(
    slug: str,
    body: bytes,
    *,
    query: str = "",
    content_type: str = "application/json",
    **headers: Any,
) -> Any:
    return client().post(
        f"/hooks/monitors/{slug}/{query}", data=body, content_type=content_type, **headers
    )


def signed(kind: str, slug: str, body: bytes) -> Any:
    headers, query = auth_for(kind=kind, body=body)
    return post(slug, body, query=query, **headers)


def receipt_of(response: Any) -> WebhookReceipt:
    return WebhookReceipt.objects.get(pk=response.json()["receipt"])


def test_nul_in_the_slug_query_and_headers_is_refused_and_kept() -> None:
    source = source_create(kind="statuspage")
    response = post("a\x00b", b"{}")
    assert response.status_code == 404
    assert receipt_of(response).slug == "a\ufffdb"
    response = post(source.slug, b"{}", query="?token=%00&x=%00", HTTP_USER_AGENT="ua\x00")
    assert response.status_code == 401
    receipt = receipt_of(response)
    assert receipt.query == "token=[redacted]&x=\ufffd"
    assert receipt.headers["User-Agent"] == "ua\ufffd"


def test_nul_in_a_signed_pagerduty_delivery_id_is_applied_once_then_a_duplicate() -> None:
    source = source_create(kind="pagerduty")
    body = sample_bytes("pagerduty", "triggered")
    headers, _ = auth_for(kind="pagerduty", body=body, webhook_id="id\x00")
    assert post(source.slug, body, **headers).status_code == 200
    assert DeliverySeen.objects.get().delivery_id == "pd:id\ufffd"
    again = post(source.slug, body, **headers)
    assert again.status_code == 200
    assert again.json()["verdict"] == Verdict.DUPLICATE


def test_nul_in_an_unauthenticated_body_is_401_and_kept() -> None:
    source = source_create(kind="alertmanager")
    response = post(source.slug, b'{"alerts": "\x00"}')
    assert response.status_code == 401
    assert receipt_of(response).body == '{"alerts": "\ufffd"}'


@pytest.mark.parametrize("stamp", ["9" * 400, "-9" * 200, "1e9", "\uff11"])
def test_an_absurd_signature_timestamp_is_401_on_every_timestamped_kind(stamp: str) -> None:
    generic = source_create(kind="generic")
    before = STATE()
    response = post(generic.slug, b"{}", HTTP_X_CONTINUITY_SIGNATURE=f"t={stamp},v1=00")
    assert response.status_code == 401
    assert "is not a unix time" in response.json()["detail"]
    grafana = source_create(kind="grafana", options={"timestamp_header": "X-Grafana-Timestamp"})
    response = post(
        grafana.slug,
        b"{}",
        HTTP_X_GRAFANA_ALERTING_SIGNATURE="00",
        HTTP_X_GRAFANA_TIMESTAMP=stamp,
    )
    assert response.status_code == 401
    assert receipt_of(response).verdict == Verdict.UNAUTHORIZED
    assert STATE() == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested deeper"),
        (b'[{"status": "firing"}]', "must be a JSON object"),
        (b'"firing"', "must be a JSON object"),
        (b'{"status": "firing", "incident_key": NaN}', "not a JSON number"),
        (b'{"status": "firing", "incident_key": "k", "started_at": 1e300}', "out of range"),
        (b'{"status": "firing", "incident_key": "k", "ended_at": "9999999999999999"}', "range"),
        (b'{"status": "firing", "incident_key": "k", "labels": ["x"]}', "must be an object"),
    ],
)
def test_malformed_authenticated_bodies_are_400_quickly_and_change_nothing(
    body: bytes, detail: str
) -> None:
    source = source_create(kind="generic")
    before = STATE()
    started = time.monotonic()
    response = signed("generic", source.slug, body)
    assert response.status_code == 400, response.content
    assert detail in response.json()["detail"]
    assert time.monotonic() - started < 10  # a scan, not a recursion; generous for a busy box
    assert receipt_of(response).verdict in (Verdict.MALFORMED, Verdict.INVALID)
    assert STATE() == before


def _multipart(fields: list[tuple[str, bytes]]) -> bytes:
    parts = [
        b'--x\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (n.encode(), v)
        for n, v in fields
    ]
    return b"".join(parts) + b"--x--\r\n"


@pytest.mark.parametrize(
    ("content_type", "body", "detail"),
    [
        ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(2000)), "Max"),
        ("application/x-www-form-urlencoded", b"data=" + b"%5B" * 5000, "nested deeper"),
        ("multipart/form-data; boundary=x", _multipart([("data", b"[" * 5000)]), "nested deeper"),
        (
            "multipart/form-data; boundary=x",
            _multipart([(f"f{i}", b"1") for i in range(2000)]),
            "could not be parsed",
        ),
        ("multipart/form-data", b"--x\r\n", "could not be parsed"),
    ],
)
def test_hostile_form_bodies_are_400_with_the_reason_on_the_receipt(
    content_type: str, body: bytes, detail: str
) -> None:
    source = source_create(kind="alertmanager")
    response = post(
        source.slug, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {SECRET}"
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert receipt_of(response).verdict == Verdict.MALFORMED


def test_an_escaped_nul_in_an_authenticated_alert_is_accepted_with_the_nul_replaced() -> None:
    source = source_create(kind="generic")
    body = json.dumps(
        {"status": "firing", "incident_key": "k\x00", "summary": "Graph API\x00 down"}
    ).encode()
    response = signed("generic", source.slug, body)
    assert response.status_code == 200, response.content
    assert OutageWindow.objects.count() == 1
    signal = OutageSignal.objects.get()
    assert (signal.incident_key, signal.summary) == ("k\ufffd", "Graph API\ufffd down")


# --- fuzz -----------------------------------------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


SAMPLE_NAMES = sorted(
    (kind.name, path.stem) for kind in SAMPLES.iterdir() for path in kind.glob("*.json")
)


@st.composite
def mutated_samples(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real sample of some kind with one to three leaves swapped for hostile values."""
    kind, name = draw(st.sampled_from(SAMPLE_NAMES))
    payload: Any = sample(kind, name)
    for _ in range(draw(st.integers(1, 3))):
        leaves = _leaves(payload)
        path = leaves[draw(st.integers(0, len(leaves) - 1))]
        payload = _replace(payload, path, draw(json_values))
    return kind, dumps(payload)


@FUZZ
@given(
    case=st.one_of(
        mutated_samples(),
        mutated_samples(),
        st.tuples(st.sampled_from(sorted(KINDS)), bodies(json_values)),
    ),
    authenticated=st.booleans(),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
        ]
    ),
    hostile_header=st.none() | HOSTILE_TEXT.filter(lambda t: "\ud800" not in t),
)
def test_fuzz_monitor_webhooks_never_5xx_and_refusals_change_nothing(
    case: tuple[str, bytes], authenticated: bool, content_type: str, hostile_header: str | None
) -> None:
    kind, body = case
    source = source_create(kind=kind, options={"timestamp_header": "X-Ts"})
    before, receipts = STATE(), WebhookReceipt.objects.count()
    headers, query = auth_for(kind=kind, body=body) if authenticated else ({}, "")
    if kind == "grafana":
        headers = {}  # signed with the timestamp this source's options ask for
        ts = str(int(time.time()))
        headers["HTTP_X_TS"] = ts
        headers["HTTP_X_GRAFANA_ALERTING_SIGNATURE"] = (
            hmac_hex(SECRET, ts.encode() + b":" + body) if authenticated else "00"
        )
    if hostile_header is not None:
        headers["HTTP_X_WEBHOOK_ID"] = hostile_header
        headers["HTTP_USER_AGENT"] = hostile_header
    response = post(source.slug, body, query=query, content_type=content_type, **headers)
    assert response.status_code < 500, response.content[:300]
    event(f"answered {response.status_code}")
    assert WebhookReceipt.objects.count() == receipts + 1
    if response.status_code >= 400:
        assert STATE() == before


def test_an_over_long_incident_key_is_applied_under_a_stable_short_key() -> None:
    source = source_create(kind="alertmanager")
    payload = sample("alertmanager", "firing")
    for alert in payload["alerts"]:
        alert["fingerprint"] = "f" * 5000 + alert["fingerprint"]
    body = json.dumps(payload).encode()
    for _ in range(2):  # the same long key twice is one signal, not two
        response = signed("alertmanager", source.slug, body)
        assert response.status_code == 200, response.content
    keys = list(OutageSignal.objects.values_list("incident_key", flat=True))
    assert len(keys) == len(payload["alerts"])
    assert all(len(key) <= 255 for key in keys)
    assert len(set(keys)) == len(keys)  # distinct long keys stay distinct
