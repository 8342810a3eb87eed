from __future__ import annotations

import time
from collections.abc import Iterator
from re import Match

import pytest
import requests

from sandbox.base import FakeRequest, FakeResponse, FakeServer


class EchoFake(FakeServer):
    name = "echo"

    def setup(self) -> None:
        self.route("POST", r"/echo/(?P<word>\w+)", self._echo)

    def _echo(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        return FakeResponse(201, {"word": match["word"], "body": request.json()})


@pytest.fixture
def fake() -> Iterator[EchoFake]:
    with EchoFake() as server:
        yield server


def test_a_fake_answers_its_routes_and_records_requests(fake: EchoFake) -> None:
    response = requests.post(f"{fake.url}/echo/hi", json={"a": 1}, timeout=5)
    assert response.status_code == 201
    assert response.json() == {"word": "hi", "body": {"a": 1}}
    assert [r.path for r in fake.received] == ["/echo/hi"]
    assert requests.post(f"{fake.url}/nope", timeout=5).status_code == 404


def test_error_and_rate_limit_faults_answer_like_a_provider(fake: EchoFake) -> None:
    fake.set_fault(mode="error", status=503, remaining=1)
    assert requests.post(f"{fake.url}/echo/a", json={}, timeout=5).status_code == 503
    assert requests.post(f"{fake.url}/echo/a", json={}, timeout=5).status_code == 201
    fake.set_fault(mode="rate_limit", retry_after_s=7)
    limited = requests.post(f"{fake.url}/echo/a", json={}, timeout=5)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"


def test_slow_fault_delays_the_answer(fake: EchoFake) -> None:
    fake.set_fault(mode="slow", delay_s=0.3)
    started = time.perf_counter()
    assert requests.post(f"{fake.url}/echo/a", json={}, timeout=5).status_code == 201
    assert time.perf_counter() - started >= 0.3


def test_timeout_after_accept_records_the_request_but_never_answers(fake: EchoFake) -> None:
    fake.set_fault(mode="timeout", delay_s=1.0, after_accept=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{fake.url}/echo/late", json={}, timeout=0.3)
    assert [r.path for r in fake.received] == ["/echo/late"]


def test_reset_and_refuse_faults_fail_at_the_connection(fake: EchoFake) -> None:
    fake.set_fault(mode="reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{fake.url}/echo/a", json={}, timeout=5)
    fake.set_fault(mode="refuse")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"{fake.url}/echo/a", json={}, timeout=5)
    fake.clear_fault()
    assert requests.post(f"{fake.url}/echo/a", json={}, timeout=5).status_code == 201


def test_faults_can_be_switched_over_http_from_another_process(fake: EchoFake) -> None:
    bad = requests.post(f"{fake.url}/__sandbox__/fault", json={"mode": "explode"}, timeout=5)
    assert bad.status_code == 400
    ok = requests.post(
        f"{fake.url}/__sandbox__/fault", json={"mode": "error", "status": 502}, timeout=5
    )
    assert ok.status_code == 200
    assert requests.post(f"{fake.url}/echo/a", json={}, timeout=5).status_code == 502
    requests.post(f"{fake.url}/__sandbox__/reset", timeout=5)
    assert requests.post(f"{fake.url}/echo/b", json={}, timeout=5).status_code == 201
    listing = requests.get(f"{fake.url}/__sandbox__/received", timeout=5).json()
    assert listing["count"] == 1
    assert listing["items"][0]["path"] == "/echo/b"
