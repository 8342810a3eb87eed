"""The outbound-request guard: which URLs and which resolved addresses the server may send to."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from continuity import outbound
from continuity.outbound import (
    GuardedResolver,
    OutboundRefused,
    outbound_address_check,
    outbound_url_check,
    push_endpoint_check,
)

PUSH_HOSTS = ["fcm.googleapis.com", "*.notify.windows.com", "web.push.apple.com"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1:5432/x", "not an IP address"),
        ("https://169.254.169.254/latest/meta-data/", "not an IP address"),
        ("https://[::1]:8301/admin/", "not an IP address"),
        ("https://[::ffff:10.0.0.1]/x", "not an IP address"),
        ("https://2130706433/x", "not an IP address"),
        ("https://127.1/x", "not an IP address"),
        ("https://0x7f.1/x", "not an IP address"),
        ("http://fcm.googleapis.com/fcm/send/x", "only https"),
        ("ftp://fcm.googleapis.com/x", "only https"),
        ("https://user:pw@fcm.googleapis.com/x", "user name or password"),
        ("https://evil.example/x", "evil.example is not an allowed host"),
        ("https://fcm.googleapis.com.evil.example/x", "not an allowed host"),
        ("https://notify.windows.com/x", "not an allowed host"),
        ("https:///nohost", "no usable host"),
        ("https://fcm.googleapis.com:99999/x", "no usable host"),
        ("https://[::1/x", "no usable host"),
    ],
)
def test_a_url_that_is_not_https_to_an_allowed_name_is_refused_with_its_reason(
    url: str, reason: str
) -> None:
    with pytest.raises(OutboundRefused) as refused:
        outbound_url_check(url=url, allowed_hosts=PUSH_HOSTS)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://FCM.googleapis.com./wp/abc",
        "https://wns2-by3p.notify.windows.com/w/?token=abc",
        "https://web.push.apple.com/QGx",
    ],
)
def test_https_urls_to_allowed_hosts_pass(url: str) -> None:
    outbound_url_check(url=url, allowed_hosts=PUSH_HOSTS)


def test_the_sandbox_push_origin_passes_only_while_the_sandbox_is_on(settings: Any) -> None:
    settings.SANDBOX_PUSH_BASE_URL = "http://127.0.0.1:8040"
    settings.SANDBOX_ENABLED = True
    push_endpoint_check(url="http://127.0.0.1:8040/push/abc")
    with pytest.raises(OutboundRefused):
        push_endpoint_check(url="http://127.0.0.1:8041/push/abc")
    with pytest.raises(OutboundRefused):
        push_endpoint_check(url="https://127.0.0.1:8040/push/abc")
    settings.SANDBOX_ENABLED = False
    with pytest.raises(OutboundRefused, match="only https"):
        push_endpoint_check(url="http://127.0.0.1:8040/push/abc")


def test_the_push_allow_list_is_a_setting(settings: Any) -> None:
    settings.SANDBOX_ENABLED = False
    push_endpoint_check(url="https://updates.push.services.mozilla.com/wpush/v2/abc")
    settings.DELIVERY_PUSH_ALLOWED_HOSTS = ["push.example.net"]
    push_endpoint_check(url="https://push.example.net/abc")
    with pytest.raises(OutboundRefused, match="not an allowed host"):
        push_endpoint_check(url="https://updates.push.services.mozilla.com/wpush/v2/abc")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
        "fe80::1%eth0",
        "not-an-address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(OutboundRefused):
        outbound_address_check(address=address)


@pytest.mark.parametrize("address", ["8.8.8.8", "142.250.74.10", "2001:4860:4860::8888"])
def test_public_addresses_pass(address: str) -> None:
    outbound_address_check(address=address)


def _resolve_with(monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> None:
    async def fake(host: str, port: int, family: int) -> list[tuple[int, str]]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in addresses]

    monkeypatch.setattr(outbound, "outbound_resolve", fake)


def test_the_resolver_hands_back_public_addresses_for_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolve_with(monkeypatch, ["142.250.74.10", "2001:4860:4860::8888"])
    results = asyncio.run(GuardedResolver().resolve("fcm.googleapis.com", 443))
    assert [(r["host"], r["hostname"], r["port"]) for r in results] == [
        ("142.250.74.10", "fcm.googleapis.com", 443),
        ("2001:4860:4860::8888", "fcm.googleapis.com", 443),
    ]


def test_the_resolver_refuses_a_name_if_any_address_is_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolve_with(monkeypatch, ["142.250.74.10", "10.0.0.1"])
    with pytest.raises(OutboundRefused, match=r"fcm\.googleapis\.com resolves to a refused"):
        asyncio.run(GuardedResolver().resolve("fcm.googleapis.com", 443))


def test_the_resolver_lets_only_the_listed_sandbox_host_and_port_reach_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolve_with(monkeypatch, ["127.0.0.1"])
    resolver = GuardedResolver(allow=[("localhost", 18040)])
    [result] = asyncio.run(resolver.resolve("localhost", 18040))
    assert result["host"] == "127.0.0.1"
    with pytest.raises(OutboundRefused):
        asyncio.run(resolver.resolve("localhost", 18041))
