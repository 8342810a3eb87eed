"""Rate limits on public endpoints and webhooks (continuity/throttle.py), against the real Redis."""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import Client

from continuity import throttle
from continuity.client_ip import client_ip
from delivery.models import ProviderReceipt
from outages.models import WebhookReceipt
from tests.outages.factories import hook_post, sample_bytes, source_create

pytestmark = pytest.mark.django_db

TWILIO_STATUS = "/webhooks/twilio/status/"


def _rules(settings: Any, **limits: tuple[int, ...]) -> None:
    """The configured rules with some limits lowered: name=(per_ip, per_source[, refused])."""
    rules = []
    for configured in settings.THROTTLE_RULES:
        entry = dict(configured)
        if entry["name"] in limits:
            entry["per_ip"], entry["per_source"], *refused = limits[entry["name"]]
            if refused:
                entry["refused_per_ip"] = refused[0]
        rules.append(entry)
    settings.THROTTLE_RULES = rules


@pytest.fixture
def throttled(settings: Any) -> Iterator[redis.Redis]:
    """Throttling on, with a key prefix of this test's own so windows never carry over."""
    settings.THROTTLE_ENABLED = True
    prefix = f"{settings.REDIS_KEY_PREFIX}throttle-test-{secrets.token_hex(4)}:"
    settings.REDIS_KEY_PREFIX = prefix
    throttle.counter.reset()
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    throttle.counter.reset()
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(client: Client, path: str, ip: str, **extra: Any) -> Any:
    return client.post(
        path,
        data=b"MessageSid=SM1",
        content_type="application/x-www-form-urlencoded",
        REMOTE_ADDR=ip,
        **extra,
    )


def test_a_burst_on_a_provider_webhook_gets_429_with_retry_after_and_a_reason(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"provider-webhook": (3, 1000)})
    client = Client()
    answers = [_post(client, TWILIO_STATUS, "203.0.113.10") for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]  # unsigned: refused by the view
    refused = answers[3]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    body = refused.json()
    assert body["error"] == "rate_limited"
    assert "Too many requests from your address" in body["detail"]
    assert answers[4].status_code == 429
    # The view never ran for the refused ones: three receipts, not five.
    assert ProviderReceipt.objects.count() == 3
    keys = [k.decode() for k in throttled.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*")]
    assert keys and all(
        k.startswith(f"{settings.REDIS_KEY_PREFIX}continuity:throttle:") for k in keys
    )


def test_another_address_is_not_affected_by_one_addresses_burst(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"provider-webhook": (2, 1000)})
    client = Client()
    for _ in range(4):
        _post(client, TWILIO_STATUS, "203.0.113.10")
    assert _post(client, TWILIO_STATUS, "203.0.113.10").status_code == 429
    assert _post(client, TWILIO_STATUS, "198.51.100.20").status_code == 401


def test_ipv6_clients_are_counted_per_64(settings: Any, throttled: redis.Redis) -> None:
    _rules(settings, **{"provider-webhook": (2, 1000)})
    client = Client()
    _post(client, TWILIO_STATUS, "2001:db8:1:2::1")
    _post(client, TWILIO_STATUS, "2001:db8:1:2::ffff")
    assert _post(client, TWILIO_STATUS, "2001:db8:1:2:abcd::9").status_code == 429
    assert _post(client, TWILIO_STATUS, "2001:db8:1:3::1").status_code == 401


def test_a_source_limit_counts_every_address_but_leaves_other_sources_alone(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"monitor-webhook": (100, 3)})
    client = Client()
    answers = [
        client.post(
            "/hooks/monitors/grafana-main/",
            data=b"{}",
            content_type="application/json",
            REMOTE_ADDR=f"203.0.113.{n}",
        )
        for n in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [404, 404, 404]
    assert answers[3].status_code == 429
    assert "endpoint" in answers[3].json()["detail"]
    other = client.post(
        "/hooks/monitors/kuma/",
        data=b"{}",
        content_type="application/json",
        REMOTE_ADDR="203.0.113.99",
    )
    assert other.status_code == 404
    assert WebhookReceipt.objects.count() == 4


def test_requests_refused_per_address_do_not_use_up_the_sources_allowance(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"provider-webhook": (2, 5)})
    client = Client()
    for _ in range(20):
        _post(client, "/webhooks/sendgrid/events/", "203.0.113.66")
    # A noisy address used two of the source's five; the provider's other addresses still pass.
    passed = [
        _post(client, "/webhooks/sendgrid/events/", f"198.51.100.{n}").status_code for n in range(3)
    ]
    assert 429 not in passed


def test_workspace_webhook_urls_are_separate_sources(settings: Any, throttled: redis.Redis) -> None:
    _rules(settings, **{"provider-webhook": (100, 2)})
    client = Client()
    for n in range(2):
        _post(client, "/webhooks/twilio/status/41/", f"203.0.113.{n}")
    assert _post(client, "/webhooks/twilio/inbound/41/", "203.0.113.50").status_code == 429
    assert _post(client, "/webhooks/twilio/status/42/", "203.0.113.51").status_code != 429
    assert _post(client, TWILIO_STATUS, "203.0.113.52").status_code != 429


def test_public_pages_answer_a_429_page_for_people(settings: Any, throttled: redis.Redis) -> None:
    _rules(settings, **{"public-link": (2, 0)})
    client = Client()
    for path in ("/u/not-a-token/", "/preferences/not-a-token/"):
        assert client.get(path, REMOTE_ADDR="203.0.113.7").status_code == 400
    refused = client.get("/confirm/not-a-token/", REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("text/html")
    assert "Too many requests" in refused.content.decode()
    assert int(refused["Retry-After"]) >= 1


def test_one_link_is_limited_whichever_addresses_open_it(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"public-link": (100, 2)})
    client = Client()
    for n in range(2):
        assert client.get("/u/leaked-token/", REMOTE_ADDR=f"203.0.113.{n}").status_code == 400
    assert client.get("/u/leaked-token/", REMOTE_ADDR="203.0.113.9").status_code == 429
    assert client.get("/u/another-token/", REMOTE_ADDR="203.0.113.9").status_code == 400


def test_push_subscribe_is_limited_per_address_and_per_workspace(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"push-subscribe": (2, 3)})
    client = Client()
    path = "/push/some-shop/subscribe/"
    for _ in range(2):
        assert (
            client.post(
                path, data=b"{}", content_type="application/json", REMOTE_ADDR="203.0.113.1"
            ).status_code
            != 429
        )
    assert (
        client.post(
            path, data=b"{}", content_type="application/json", REMOTE_ADDR="203.0.113.1"
        ).status_code
        == 429
    )
    assert (
        client.post(
            path, data=b"{}", content_type="application/json", REMOTE_ADDR="203.0.113.2"
        ).status_code
        != 429
    )
    assert (
        client.post(
            path, data=b"{}", content_type="application/json", REMOTE_ADDR="203.0.113.3"
        ).status_code
        == 429
    )
    # The service worker script is not a subscription.
    assert client.get("/push/sw.js", REMOTE_ADDR="203.0.113.1").status_code == 200


def test_admin_sign_in_posts_are_limited_per_address_whatever_the_name(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"admin-login": (3, 0)})
    client = Client()
    guess = "wrong"
    codes = [
        client.post("/admin/login/", {"username": f"guess{n}", "password": guess}).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    # Showing the form is not counted.
    assert client.get("/admin/login/").status_code == 200


def test_an_address_that_collects_refusals_is_refused_outright_and_keeps_no_more_receipts(
    settings: Any, throttled: redis.Redis
) -> None:
    _rules(settings, **{"monitor-webhook": (100, 100, 3)})
    client = Client()

    def guess(n: int, ip: str = "203.0.113.30") -> int:
        return client.post(
            f"/hooks/monitors/guess-{n}/",
            data=b"{}",
            content_type="application/json",
            REMOTE_ADDR=ip,
        ).status_code

    assert [guess(n) for n in range(3)] == [404, 404, 404]
    refused = client.post(
        "/hooks/monitors/guess-9/",
        data=b"{}",
        content_type="application/json",
        REMOTE_ADDR="203.0.113.30",
    )
    assert refused.status_code == 429
    assert "refused requests" in refused.json()["detail"]
    assert WebhookReceipt.objects.count() == 3
    assert guess(10, ip="198.51.100.30") == 404


def test_accepted_requests_never_count_as_refusals(settings: Any, throttled: redis.Redis) -> None:
    _rules(settings, **{"monitor-webhook": (100, 100, 2)})
    source = source_create(kind="uptime_kuma")
    body = sample_bytes("uptime_kuma", "down")
    codes = {hook_post(Client(), source, body).status_code for _ in range(5)}
    assert codes and all(200 <= code < 300 for code in codes)


def test_with_redis_down_webhooks_pass_and_it_is_logged_once(
    settings: Any, throttled: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    _rules(settings, **{"provider-webhook": (1, 1)})
    settings.THROTTLE_REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/3"
    client = Client()
    with caplog.at_level(logging.WARNING, logger="continuity.throttle"):
        codes = [_post(client, TWILIO_STATUS, "203.0.113.10").status_code for _ in range(5)]
    assert codes == [401] * 5
    assert ProviderReceipt.objects.count() == 5
    warnings = [r for r in caplog.records if "rate limits unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_with_redis_down_public_pages_pass_by_default_or_are_refused_when_set_closed(
    settings: Any, throttled: redis.Redis
) -> None:
    settings.THROTTLE_REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/3"
    client = Client()
    assert client.get("/u/not-a-token/").status_code == 400
    rules = [
        dict(e, fail_open=False) if e["name"] == "public-link" else e
        for e in settings.THROTTLE_RULES
    ]
    settings.THROTTLE_RULES = rules
    closed = client.get("/u/not-a-token/")
    assert closed.status_code == 429
    assert int(closed["Retry-After"]) >= 1


def test_concurrent_requests_are_counted_exactly(settings: Any, throttled: redis.Redis) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # An hour's window: the burst below cannot plausibly straddle two windows.
    settings.THROTTLE_RULES = [
        {"name": "burst", "pattern": r"^/burst/$", "per_ip": 7, "window_s": 3600},
    ]

    def one(_: int) -> bool:
        return throttle.throttle_check(path="/burst/", method="POST", ip="203.0.113.77") is None

    with ThreadPoolExecutor(max_workers=8) as pool:
        passed = list(pool.map(one, range(40)))
    assert sum(passed) == 7


def test_paths_no_rule_names_are_never_counted(settings: Any, throttled: redis.Redis) -> None:
    _rules(settings, **{"provider-webhook": (1, 1)})
    client = Client()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert not list(throttled.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*"))


# --- the client address -------------------------------------------------------------------------


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    rf: Any, settings: Any
) -> None:
    settings.TRUSTED_PROXIES = []
    request = rf.get("/", REMOTE_ADDR="203.0.113.1", HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert client_ip(request) == "203.0.113.1"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request) == "203.0.113.1"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client(
    rf: Any, settings: Any
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8::/32"]
    # The client wrote "1.2.3.4" itself; our two proxies appended what they saw.
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.8, 10.1.1.1"
    )
    assert client_ip(request) == "198.51.100.8"
    only_proxies = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert client_ip(only_proxies) == "10.9.9.9"
    garbage = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, not-an-ip")
    assert client_ip(garbage) == "10.0.0.2"
    with_ports = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="[2001:db9::5]:443")
    assert client_ip(with_ports) == "2001:db9::5"
    assert client_ip(rf.get("/", REMOTE_ADDR="not an address")) is None


def test_a_trusted_proxies_setting_that_is_not_an_address_stops_startup() -> None:
    import os
    import subprocess  # nosec B404 - runs this interpreter, no shell
    import sys

    env = {**os.environ, "TRUSTED_PROXIES": "10.0.0.0/8,proxy.example.com"}
    done = subprocess.run(  # nosec B603 - fixed arguments, this interpreter
        [sys.executable, "-c", "import django; django.setup()"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "TRUSTED_PROXIES holds 'proxy.example.com'" in done.stderr
