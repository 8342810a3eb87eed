"""Fakes answer without the Nagle/delayed-ACK stall (a bug fixed in sandbox/base.py): a
benchmark against a fake measures the code under test, not 40 ms per response."""

from __future__ import annotations

import time

import requests

from sandbox.x import XFake


def test_sequential_requests_to_a_fake_are_not_stalled_per_response() -> None:
    with XFake() as fake, requests.Session() as session:
        headers = {"Authorization": "Bearer t"}
        session.get(f"{fake.url}/2/users/me", headers=headers, timeout=5)  # connect once
        took = []
        for n in range(50):
            started = time.perf_counter()
            response = session.post(
                f"{fake.url}/2/tweets", json={"text": f"n{n}"}, headers=headers, timeout=5
            )
            took.append(time.perf_counter() - started)
            assert response.status_code == 201
    # A stalled fake makes every response wait for the peer's delayed ACK (40 ms on Linux); a
    # busy machine slows some requests, never all 50, so the fastest one tells them apart.
    assert min(took) < 0.035, f"fastest of 50 requests took {min(took) * 1000:.0f} ms"
