from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from delivery.publishers.base import (
    PublishError,
    PublishPermanent,
    PublishThrottled,
    PublishTransient,
    SocialAccountRef,
    SocialPostRequest,
)
from delivery.publishers.x import X_TEXT_LIMIT, XPublisher, x_weighted_length
from sandbox.x import DUPLICATE_DETAIL, XFake
from tests.delivery.publishers.contract import Fake, PublisherContract

X_CASES: dict[str, type[PublishError]] = {
    "http-500": PublishTransient,
    "http-503": PublishTransient,
    "http-429": PublishThrottled,
    "http-401": PublishPermanent,
    "http-403-duplicate": PublishPermanent,
    "http-400": PublishPermanent,
    "expired-token": PublishPermanent,
}


class TestXContract(PublisherContract):
    network = "x"
    error_cases: ClassVar[dict[str, type[PublishError]]] = X_CASES
    send_path = r"^/2/tweets$"

    def make_fake(self) -> Fake:
        return XFake()

    def make_account(self, fake: Fake, token: str) -> SocialAccountRef:
        assert isinstance(fake, XFake)
        fake.add_user(token, "4242", "continuity")
        return SocialAccountRef(
            network="x", access_token=token, x_user_id="4242", base_url=fake.url
        )

    def stored_ids(self, fake: Fake, account: SocialAccountRef) -> list[str]:
        assert isinstance(fake, XFake)
        return [t.id for t in fake.tweets_by(account.x_user_id)]

    def inject_error(self, fake: Fake, account: SocialAccountRef, case: str) -> SocialAccountRef:
        assert isinstance(fake, XFake)
        if case == "expired-token":
            return SocialAccountRef(**{**account.__dict__, "access_token": "expired-x"})
        status = int(case.split("-")[1])
        detail = DUPLICATE_DETAIL if case.endswith("duplicate") else ""
        fake.fail(token=account.access_token, status=status, detail=detail)
        return account


@pytest.fixture
def x() -> Iterator[XFake]:
    with XFake() as fake:
        fake.add_user("tok", "77", "shop")
        yield fake


def _acct(fake: XFake, user: str = "77") -> SocialAccountRef:
    return SocialAccountRef(network="x", access_token="tok", x_user_id=user, base_url=fake.url)


def test_find_recent_matches_through_tco_links_and_html_escaping(x: XFake) -> None:
    post = SocialPostRequest(
        text="Fish & chips <today> at shop.example.com", link="https://shop.example.com/menu?a=1"
    )
    publisher = XPublisher()
    result = publisher.publish(account=_acct(x), post=post)
    stored = x.tweets_by("77")[0]
    assert "t.co" in stored.text and "&amp;" in stored.text
    since = datetime.now(UTC) - timedelta(seconds=2)
    assert publisher.find_recent(account=_acct(x), post=post, since=since) == result.external_id
    other = SocialPostRequest(text="Fish & chips tomorrow")
    assert publisher.find_recent(account=_acct(x), post=other, since=since) is None


def test_x_refuses_the_same_text_twice_as_a_permanent_duplicate(x: XFake) -> None:
    publisher = XPublisher()
    publisher.publish(account=_acct(x), post=SocialPostRequest(text="once"))
    with pytest.raises(PublishPermanent, match="duplicate"):
        publisher.publish(account=_acct(x), post=SocialPostRequest(text="once"))


def test_check_connection_notices_a_token_for_another_user(x: XFake) -> None:
    status = XPublisher().check_connection(account=_acct(x, user="99"))
    assert not status.ok
    assert "not 99" in status.detail


def test_rate_limit_reset_header_sets_the_retry_after(x: XFake) -> None:
    x.fail(token="tok", status=429)
    with pytest.raises(PublishThrottled) as caught:
        XPublisher().publish(account=_acct(x), post=SocialPostRequest(text="hi"))
    assert 55 <= caught.value.retry_after_s <= 61


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 5),
        ("https://example.com/a/very/long/path/that/is/much/longer/than/23", 23),
        ("see example.com.", 4 + 23 + 1),
        ("visit https://a.example/x, then https://b.example/y", 6 + 23 + 7 + 23),
        ("日本語", 6),
        ("café", 4),
        ("😀", 2),
        ("👨‍👩‍👧‍👦", 2),
        ("🇫🇷", 2),
        ("—“quotes”—", 10),
    ],
)
def test_x_weighted_length_counts_like_x(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_the_x_limit_is_280_weighted_characters_with_links_at_23() -> None:
    publisher = XPublisher()
    link = "https://shop.example.com/" + "p" * 200
    fits = SocialPostRequest(text="a" * (X_TEXT_LIMIT - 24), link=link)  # text + newline + 23
    assert publisher.content_problems(post=fits) == []
    over = SocialPostRequest(text="a" * (X_TEXT_LIMIT - 23), link=link)
    [problem] = publisher.content_problems(post=over)
    assert "counts 281" in problem and "280" in problem
    assert publisher.content_problems(post=SocialPostRequest(text="字" * 141)) != []
    assert publisher.content_problems(post=SocialPostRequest(text="字" * 140)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node.js rocks", 13),  # .js is no TLD: plain text
        ("see shop.example.de", 4 + 23),
        ("ab.de", 5),  # a short bare ccTLD host is not linked
        ("ab.de/x", 23),
        ("go.shop", 23),
        ("mail me@example.com", 19),  # an address is not a link
        ("v1.2 release", 12),
    ],
)
def test_bare_domains_count_as_links_only_where_x_links_them(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected
