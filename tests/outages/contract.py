"""The one contract every monitor kind passes, fed by its samples in tests/outages/samples/<kind>/.

A kind's test class sets ``kind``, ``expected`` ({sample: [(status, incident_key), ...]}), and
``pair`` (a firing sample and the resolved sample that ends it).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from outages.models import OutageWindow, Verdict, WebhookReceipt
from outages.normalisers import KINDS
from outages.normalisers.base import Invalid, Malformed, WebhookRequest
from tests.outages.factories import (
    SAMPLES,
    auth_for,
    hook_post,
    sample,
    sample_bytes,
    source_create,
)


@pytest.mark.django_db
class NormaliserContract:
    kind: ClassVar[str]
    expected: ClassVar[dict[str, list[tuple[str, str]]]]
    pair: ClassVar[tuple[str, str]]

    def _source(self, **kwargs: Any) -> Any:
        return source_create(kind=self.kind, **kwargs)

    def test_the_kind_is_registered_and_every_sample_has_an_expectation(self) -> None:
        assert self.kind in KINDS
        names = {p.stem for p in (SAMPLES / self.kind).glob("*.json")}
        assert names, f"no samples for {self.kind}"
        assert names == set(self.expected)

    def test_each_sample_normalises_to_the_expected_signals(self) -> None:
        normaliser = KINDS[self.kind]
        for name, expected in self.expected.items():
            payload = normaliser.parse(
                request=WebhookRequest(
                    method="POST",
                    headers={},
                    query={},
                    body=sample_bytes(self.kind, name),
                    content_type="application/json",
                    received_at=__import__("django.utils.timezone").utils.timezone.now(),
                )
            )
            result = normaliser.normalise(payload=payload, options={})
            got = [("firing" if s.firing else "resolved", s.incident_key) for s in result.signals]
            assert got == expected, name
            for signal in result.signals:
                assert signal.summary, f"{name}: every signal carries a summary"

    def test_each_sample_is_accepted_end_to_end_and_its_receipt_kept(self, client: Any) -> None:
        source = self._source()
        for name, expected in self.expected.items():
            response = hook_post(client, source, sample_bytes(self.kind, name))
            assert response.status_code in (200, 202), (name, response.json())
            receipt = WebhookReceipt.objects.get(pk=response.json()["receipt"])
            assert receipt.source == source
            assert receipt.verdict == (Verdict.ACCEPTED if expected else Verdict.IGNORED)
            assert len(receipt.signals) == len(expected)

    def test_firing_then_resolved_opens_then_closes_one_window(self, client: Any) -> None:
        source = self._source(default_network="linkedin")
        firing, resolved = self.pair
        for _ in range(3):  # repeats change nothing
            assert hook_post(client, source, sample_bytes(self.kind, firing)).status_code == 200
        window = OutageWindow.objects.get()  # the default network, or the one the body names
        assert window.state == "open"
        assert hook_post(client, source, sample_bytes(self.kind, resolved)).status_code == 200
        window.refresh_from_db()
        assert window.state == "resolved"
        assert OutageWindow.objects.count() == 1

    def test_missing_credentials_get_401_and_the_receipt_says_why(self, client: Any) -> None:
        source = self._source()
        response = client.post(
            f"/hooks/monitors/{source.slug}/",
            data=sample_bytes(self.kind, self.pair[0]),
            content_type="application/json",
        )
        assert response.status_code == 401
        receipt = WebhookReceipt.objects.get(pk=response.json()["receipt"])
        assert receipt.verdict == Verdict.UNAUTHORIZED
        assert receipt.reason
        assert not OutageWindow.objects.exists()

    def test_a_wrong_secret_gets_401(self, client: Any) -> None:
        source = self._source()
        body = sample_bytes(self.kind, self.pair[0])
        headers, query = auth_for(kind=self.kind, body=body, secret="not-the-secret")
        response = client.post(
            f"/hooks/monitors/{source.slug}/{query}",
            data=body,
            content_type="application/json",
            **headers,
        )
        assert response.status_code == 401
        assert not OutageWindow.objects.exists()

    def test_malformed_json_gets_400_naming_the_problem(self, client: Any) -> None:
        source = self._source()
        response = hook_post(client, source, b'{"alerts": [')
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["detail"]
        assert WebhookReceipt.objects.get(pk=response.json()["receipt"]).verdict == "malformed"

    def test_valid_json_missing_the_kinds_fields_gets_400(self, client: Any) -> None:
        source = self._source()
        response = hook_post(client, source, b'{"hello": "world"}')
        assert response.status_code == 400, response.json()
        assert "missing" in response.json()["detail"] or "needs" in response.json()["detail"]
        assert WebhookReceipt.objects.get(pk=response.json()["receipt"]).verdict == "invalid"

    def test_a_json_array_is_malformed_for_every_kind(self) -> None:
        normaliser = KINDS[self.kind]
        with pytest.raises(Malformed):
            normaliser.parse(
                request=WebhookRequest(
                    method="POST",
                    headers={},
                    query={},
                    body=b"[1, 2]",
                    content_type="application/json",
                    received_at=__import__("django.utils.timezone").utils.timezone.now(),
                )
            )

    def test_an_empty_object_is_invalid(self) -> None:
        with pytest.raises(Invalid):
            KINDS[self.kind].normalise(payload={}, options={})

    def test_sample_payloads_are_objects(self) -> None:
        for name in self.expected:
            assert isinstance(sample(self.kind, name), dict)
