from __future__ import annotations

import pickle

import pytest

from delivery.publishers import post_content_problems, publisher_for
from delivery.publishers.base import (
    PublishError,
    PublishPermanent,
    PublishThrottled,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
    text_normalized,
    text_with_link,
)


@pytest.mark.parametrize(
    "error",
    [
        PublishTransient("down", network="facebook", http_status=500, code=2),
        PublishThrottled("slow down", retry_after_s=30, network="x", http_status=429),
        PublishPermanent("expired", needs_reauth=True, network="instagram", code=190, subcode=463),
        PublishUnknown("no answer", network="x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling_across_processes(error: PublishError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(copy) is type(error)
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)


def test_an_error_reads_with_its_codes() -> None:
    error = PublishPermanent(
        "reconnect", network="facebook", code=190, subcode=463, http_status=400
    )
    assert str(error) == "facebook: reconnect [code 190/463] [HTTP 400]"
    assert error.kind == "permanent" and not error.counts_toward_outage


def test_the_account_reference_hides_its_token() -> None:
    account = SocialAccountRef(network="x", access_token="s3cret-token", x_user_id="12")
    assert "s3cret-token" not in repr(account)
    assert account.key == "x:12"


def test_a_post_gets_a_stable_fingerprint_from_its_content() -> None:
    a = SocialPostRequest(text="hi", link="https://a.example")
    assert a.fingerprint == SocialPostRequest(text="hi", link="https://a.example").fingerprint
    assert a.fingerprint != SocialPostRequest(text="hi").fingerprint
    assert SocialPostRequest(text="hi", fingerprint="campaign-7").fingerprint == "campaign-7"


def test_text_helpers() -> None:
    assert text_with_link("Sale", "https://a.example") == "Sale\nhttps://a.example"
    assert text_with_link("Sale https://a.example", "https://a.example") == "Sale https://a.example"
    assert text_normalized("Fish &amp; chips  https://t.co/abc\n") == text_normalized(
        "Fish & chips https://shop.example/menu"
    )


def test_unknown_networks_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown network 'myspace'"):
        publisher_for(network="myspace")


def test_content_problems_per_network() -> None:
    post = SocialPostRequest(text="x" * 300)
    assert post_content_problems(network="facebook", post=post) == []
    assert len(post_content_problems(network="x", post=post)) == 1
    assert post_content_problems(network="instagram", post=post)[0].startswith(
        "Instagram needs an image"
    )
