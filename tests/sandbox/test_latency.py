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
        started = time.perf_counter()
        for n in range(50):
            response = session.post(
                f"{fake.url}/2/tweets", json={"text": f"n{n}"}, headers=headers, timeout=5
            )
            assert response.status_code == 201
        elapsed = time.perf_counter() - started
    # 50 stalled responses take >= 2 s; unstalled ones take a few ms each even on a busy box.
    assert elapsed < 1.0, f"{elapsed:.2f}s for 50 requests"
