"""One "did the request leave?" rule for providers and publishers, on real loopback sockets."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
import requests

from delivery.providers import _http
from delivery.providers.base import Deferred, OutboundMessage, SmsContent
from delivery.providers.twilio_sms import TwilioSmsSender, twilio_client
from delivery.publishers.base import (
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
)
from delivery.publishers.facebook import FacebookPublisher
from delivery.ratelimit import RedisTokenBucket
from delivery.transport import Transport, request_never_left, transport_error_sort
from tests.delivery.tls_loopback import PlainListener, TlsLoopback


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests_failure(url: str, **kwargs: object) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as caught:
        requests.post(url, data=b"hello", timeout=kwargs.pop("timeout", 5), **kwargs)  # type: ignore[arg-type]
    return caught.value


def _aiohttp_failure(url: str, *, ssl_ok: bool = True, read_s: float = 5) -> BaseException:
    async def call() -> None:
        timeout = aiohttp.ClientTimeout(sock_connect=5, sock_read=read_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=b"hello", ssl=ssl_ok) as response,
        ):
            await response.read()

    with pytest.raises((aiohttp.ClientError, TimeoutError)) as caught:
        asyncio.run(call())
    return caught.value


# --- requests ---------------------------------------------------------------------------------


def test_connection_refused_never_left() -> None:
    verdict = transport_error_sort(_requests_failure(f"http://127.0.0.1:{_closed_port()}/"))
    assert verdict.transport == Transport.NEVER_LEFT and verdict.reason == "connection refused"


def test_a_tls_handshake_that_fails_never_left() -> None:
    with PlainListener() as plain:
        exc = _requests_failure(f"https://127.0.0.1:{plain.port}/")
    assert isinstance(exc, requests.exceptions.SSLError)
    verdict = transport_error_sort(exc)
    assert verdict.transport == Transport.NEVER_LEFT and verdict.reason == "TLS handshake failed"


def test_a_certificate_that_does_not_verify_never_left() -> None:
    with TlsLoopback() as server:
        exc = _requests_failure(server.url + "/")
        assert server.received == 0
    assert transport_error_sort(exc).reason == "TLS handshake failed"
    assert request_never_left(exc)


def test_a_tls_error_after_the_request_was_written_may_have_left() -> None:
    with TlsLoopback(after="garbage") as server:
        exc = _requests_failure(server.url + "/", verify=str(server.cert_path))
        assert server.received == 1, "the request reached the server"
    # The same exception class as a failed handshake: only where it was raised tells them apart.
    assert isinstance(exc, requests.exceptions.SSLError)
    verdict = transport_error_sort(exc)
    assert verdict.transport == Transport.MAY_HAVE_LEFT
    assert verdict.reason == "TLS error after the handshake"


def test_a_reset_after_the_request_may_have_left() -> None:
    with TlsLoopback(after="reset") as server:
        exc = _requests_failure(server.url + "/", verify=str(server.cert_path))
        assert server.received == 1
    assert transport_error_sort(exc).transport == Transport.MAY_HAVE_LEFT


def test_a_read_timeout_may_have_left() -> None:
    with TlsLoopback(after="silent") as server:
        exc = _requests_failure(server.url + "/", verify=str(server.cert_path), timeout=(5, 0.3))
    verdict = transport_error_sort(exc)
    assert verdict.transport == Transport.MAY_HAVE_LEFT and verdict.reason == "read timeout"


def test_a_proxy_that_cannot_be_reached_never_left() -> None:
    proxy = f"http://127.0.0.1:{_closed_port()}"
    exc = _requests_failure("https://127.0.0.1:9/", proxies={"https": proxy, "http": proxy})
    assert isinstance(exc, requests.exceptions.ProxyError)
    assert transport_error_sort(exc).transport == Transport.NEVER_LEFT


# --- aiohttp (web push) -----------------------------------------------------------------------


def test_aiohttp_refused_and_failed_handshakes_never_left() -> None:
    refused = _aiohttp_failure(f"http://127.0.0.1:{_closed_port()}/")
    assert transport_error_sort(refused).transport == Transport.NEVER_LEFT
    with PlainListener() as plain:
        handshake = _aiohttp_failure(f"https://127.0.0.1:{plain.port}/")
    assert transport_error_sort(handshake).transport == Transport.NEVER_LEFT


def test_aiohttp_silence_after_sending_may_have_left() -> None:
    with TlsLoopback(after="silent") as server:
        exc = _aiohttp_failure(server.url + "/", ssl_ok=False, read_s=0.3)
        assert server.received == 1
    verdict = transport_error_sort(exc)
    assert verdict.transport == Transport.MAY_HAVE_LEFT and verdict.reason == "read timeout"


# --- the callers ------------------------------------------------------------------------------


def test_the_providers_helper_is_the_one_rule() -> None:
    assert _http.request_never_left is request_never_left


def test_a_tls_handshake_failure_to_twilio_is_retried_then_deferred_not_unknown(
    fast_limiter: RedisTokenBucket,
) -> None:
    with PlainListener() as plain:
        sender = TwilioSmsSender(
            client=twilio_client(
                account_sid="AC" + "0" * 32,
                auth_token="token",
                base_url=f"https://127.0.0.1:{plain.port}",
                timeout_s=5,
            ),
            limiter=fast_limiter,
            sleep=lambda _s: None,
        )
        [outcome] = sender.send_batch(
            content=SmsContent(text="hello"),
            messages=[OutboundMessage(delivery_id=1, to="+14155550100", merge_fields={})],
        )
    assert isinstance(outcome, Deferred), outcome
    assert outcome.code == "twilio_unreachable"


def _facebook(base_url: str, cert: str = "") -> tuple[FacebookPublisher, SocialAccountRef]:
    session = requests.Session()
    # The environment's CA bundle (REQUESTS_CA_BUNDLE) would win over session.verify.
    session.trust_env = False
    if cert:
        session.verify = cert
    account = SocialAccountRef(
        network="facebook", access_token="token", page_id="123", base_url=base_url
    )
    return FacebookPublisher(session=session), account


POST = SocialPostRequest(text="Autumn sale", link="", image_url="")


def test_a_tls_handshake_failure_on_a_publish_is_transient() -> None:
    with PlainListener() as plain:
        publisher, account = _facebook(f"https://127.0.0.1:{plain.port}")
        with pytest.raises(PublishTransient, match="TLS handshake failed"):
            publisher.publish(account=account, post=POST)


def test_a_tls_error_after_a_publish_was_written_is_unknown_not_retried() -> None:
    with TlsLoopback(after="garbage") as server:
        publisher, account = _facebook(server.url, cert=str(server.cert_path))
        with pytest.raises(PublishUnknown, match="TLS error after the handshake"):
            publisher.publish(account=account, post=POST)
        assert server.received == 1
