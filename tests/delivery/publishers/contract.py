"""The contract every social publisher passes (a mixin, as django-allauth does per provider).

A network's test class subclasses PublisherContract, says how to build its fake, account and
post, how to read what the fake stored, and how to make the fake answer each provider error.
The shared tests then drive the real publisher over loopback HTTP through every failure the
taxonomy names.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import requests

from delivery.publishers import publisher_for
from delivery.publishers.base import (
    Publisher,
    PublishError,
    PublishPermanent,
    PublishResult,
    PublishThrottled,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
)
from sandbox.blackhole import Blackhole
from sandbox.graph import GraphFake
from sandbox.x import XFake

SECRET = "EAAGcontractSecretToken0123456789abcdef"

Fake = GraphFake | XFake


class PublisherContract:
    network: ClassVar[str]
    # case name -> the error class publishing must raise after inject_error(case)
    error_cases: ClassVar[dict[str, type[PublishError]]]
    # path regex of the one call whose lost answer is ambiguous
    send_path: ClassVar[str]
    # False where the network offers no list of what was sent (WhatsApp)
    can_reconcile: ClassVar[bool] = True

    # --- hooks ------------------------------------------------------------------------------------

    def make_fake(self) -> Fake:
        raise NotImplementedError

    def make_account(self, fake: Fake, token: str) -> SocialAccountRef:
        raise NotImplementedError

    def make_post(self) -> SocialPostRequest:
        return SocialPostRequest(
            text="Autumn sale: 20% off everything today", link="https://shop.example.com/sale"
        )

    def stored_ids(self, fake: Fake, account: SocialAccountRef) -> list[str]:
        raise NotImplementedError

    def inject_error(self, fake: Fake, account: SocialAccountRef, case: str) -> SocialAccountRef:
        """Make the fake answer ``case``; return the account to publish with."""
        raise NotImplementedError

    def send(
        self, publisher: Publisher, account: SocialAccountRef, post: SocialPostRequest
    ) -> PublishResult:
        return publisher.publish(account=account, post=post)

    # --- fixtures ---------------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _fast_timeouts(self, settings: Any) -> None:
        settings.SOCIAL_CONNECT_TIMEOUT_S = 0.5
        settings.SOCIAL_READ_TIMEOUT_S = 0.5
        settings.SOCIAL_IG_CONTAINER_POLL_INTERVAL_S = 0.0
        settings.SOCIAL_THROTTLE_DEFAULT_RETRY_S = 45

    @pytest.fixture
    def fake(self) -> Iterator[Fake]:
        with self.make_fake() as server:
            yield server

    @pytest.fixture
    def account(self, fake: Fake) -> SocialAccountRef:
        return self.make_account(fake, SECRET)

    @pytest.fixture
    def publisher(self) -> Publisher:
        return publisher_for(network=self.network)

    # --- the contract -----------------------------------------------------------------------------

    def test_publishes_once_and_returns_the_networks_id(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        result = self.send(publisher, account, self.make_post())
        assert result.network == self.network
        assert self.stored_ids(fake, account) == [result.external_id]
        assert result.reconciled is False

    def test_a_server_error_is_transient_and_stores_nothing(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        fake.set_fault(mode="error", status=503, remaining=1)
        with pytest.raises(PublishTransient) as caught:
            self.send(publisher, account, self.make_post())
        assert caught.value.http_status == 503
        assert self.stored_ids(fake, account) == []
        assert len(fake.received) == 0, "the faulted request is the only one: no retry"

    def test_http_429_is_throttled_with_the_retry_after_given(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        fake.set_fault(mode="rate_limit", retry_after_s=7, remaining=1)
        with pytest.raises(PublishThrottled) as caught:
            self.send(publisher, account, self.make_post())
        assert caught.value.retry_after_s == 7
        assert not caught.value.counts_toward_outage

    def test_provider_errors_are_classified(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher, error_case: str
    ) -> None:
        expected = self.error_cases[error_case]
        used = self.inject_error(fake, account, error_case)
        with pytest.raises(PublishError) as caught:
            self.send(publisher, used, self.make_post())
        assert type(caught.value) is expected, f"{error_case}: {caught.value!r}"
        assert self.stored_ids(fake, used) == []
        if expected is PublishThrottled:
            assert caught.value.retry_after_s > 0  # type: ignore[attr-defined]
        assert caught.value.counts_toward_outage is (expected is PublishTransient)

    def test_connection_refused_is_transient(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        fake.set_fault(mode="refuse")
        try:
            with pytest.raises(PublishTransient, match="refused"):
                self.send(publisher, account, self.make_post())
        finally:
            fake.clear_fault()
        assert self.stored_ids(fake, account) == []

    def test_dns_failure_is_transient(
        self, account: SocialAccountRef, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            # The one narrow mock: a name that does not resolve, without asking a DNS server.
            if str(host).endswith(".invalid"):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        unresolvable = SocialAccountRef(
            **{**account.__dict__, "base_url": "http://api.sandbox.invalid"}
        )
        with pytest.raises(PublishTransient, match="DNS"):
            self.send(publisher, unresolvable, self.make_post())

    def test_a_connect_timeout_before_sending_is_transient(
        self, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        with Blackhole() as hole:
            unreachable = SocialAccountRef(**{**account.__dict__, "base_url": hole.url})
            with pytest.raises(PublishTransient, match="connect timeout"):
                self.send(publisher, unreachable, self.make_post())

    def test_a_timeout_after_accepting_is_unknown_then_found_without_a_second_post(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        since = datetime.now(UTC) - timedelta(seconds=1)
        post = self.make_post()
        fake.fault_on(
            "POST", self.send_path, mode="timeout", after_accept=True, delay_s=1.0, remaining=1
        )
        with pytest.raises(PublishUnknown) as caught:
            self.send(publisher, account, post)
        assert caught.value.counts_toward_outage
        assert len(fake.requests_to(self.send_path)) == 1, "no silent retry underneath"
        stored = self.stored_ids(fake, account)
        assert len(stored) == 1, "the fake acted on the request before going silent"
        found = publisher.find_recent(account=account, post=post, since=since)
        if self.can_reconcile:
            assert found == stored[0]
        else:
            assert found is None
        assert self.stored_ids(fake, account) == stored, "reconciling never posts again"

    def test_find_recent_finds_nothing_when_nothing_went_out(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        since = datetime.now(UTC) - timedelta(seconds=1)
        assert publisher.find_recent(account=account, post=self.make_post(), since=since) is None

    def test_find_recent_that_cannot_ask_raises_rather_than_saying_no(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        if not self.can_reconcile:
            pytest.skip("nothing to ask: this network offers no list of sent items")
        fake.set_fault(mode="error", status=500)
        with pytest.raises(PublishTransient):
            publisher.find_recent(account=account, post=self.make_post(), since=datetime.now(UTC))

    def test_the_token_never_appears_in_errors_logs_or_the_inbox(
        self,
        fake: Fake,
        account: SocialAccountRef,
        publisher: Publisher,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        echoing = json.dumps(
            {
                "error": {
                    "message": f"Invalid token {SECRET}",
                    "type": "OAuthException",
                    "code": 100,
                },
                "title": "Invalid Request",
                "detail": f"token {SECRET} rejected",
                "type": "about:blank",
            }
        )
        errors: list[PublishError] = []
        for fault in (
            {"mode": "error", "status": 400, "body": echoing},
            {"mode": "error", "status": 500, "body": echoing},
            {"mode": "timeout", "after_accept": False, "delay_s": 1.0},
        ):
            fake.set_fault(remaining=1, **fault)  # type: ignore[arg-type]
            with pytest.raises(PublishError) as caught:
                self.send(publisher, account, self.make_post())
            errors.append(caught.value)
        status = publisher.check_connection(account=self.make_account(fake, "expired-" + SECRET))
        assert not status.ok
        texts = [str(e) for e in errors] + [e.detail for e in errors] + [repr(e) for e in errors]
        texts += [status.detail, repr(account), caplog.text]
        assert errors[0].detail.count("[redacted]") >= 1
        for text in texts:
            assert SECRET not in text
        inbox = requests.get(f"{fake.url}/__sandbox__/received", timeout=5).text
        assert SECRET not in inbox
        assert len(json.loads(inbox)["items"]) >= 1

    def test_check_connection_reports_a_working_and_an_expired_token(
        self, fake: Fake, account: SocialAccountRef, publisher: Publisher
    ) -> None:
        assert publisher.check_connection(account=account).ok
        expired = publisher.check_connection(account=self.make_account(fake, "expired-abc"))
        assert not expired.ok
        assert isinstance(expired.error, PublishPermanent)
        assert expired.error.needs_reauth
