from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from delivery.publishers.base import (
    PublishError,
    PublishPermanent,
    PublishTransient,
    SocialAccountRef,
    SocialPostRequest,
)
from delivery.publishers.instagram import CAPTION_LIMIT, InstagramPublisher
from sandbox.graph import GraphFake
from tests.delivery.publishers.contract import Fake, PublisherContract
from tests.delivery.publishers.test_facebook import GRAPH_CASES, inject_graph_error

IMAGE = "https://cdn.example.com/autumn.jpg"


class TestInstagramContract(PublisherContract):
    network = "instagram"
    error_cases: ClassVar[dict[str, type[PublishError]]] = GRAPH_CASES
    send_path = r"/media_publish$"

    def make_fake(self) -> Fake:
        fake = GraphFake()
        fake.container_polls = 2
        return fake

    def make_account(self, fake: Fake, token: str) -> SocialAccountRef:
        return SocialAccountRef(
            network="instagram", access_token=token, ig_user_id="1784", base_url=fake.url
        )

    def make_post(self) -> SocialPostRequest:
        return SocialPostRequest(
            text="Autumn sale #autumn", link="https://shop.example.com", image_url=IMAGE
        )

    def stored_ids(self, fake: Fake, account: SocialAccountRef) -> list[str]:
        assert isinstance(fake, GraphFake)
        return [p.id for p in fake.posts_for(account.ig_user_id)]

    def inject_error(self, fake: Fake, account: SocialAccountRef, case: str) -> SocialAccountRef:
        assert isinstance(fake, GraphFake)
        return inject_graph_error(fake, account, case)


@pytest.fixture
def graph(settings: Any) -> Iterator[GraphFake]:
    settings.SOCIAL_IG_CONTAINER_POLL_INTERVAL_S = 0.0
    settings.SOCIAL_IG_CONTAINER_POLL_MAX = 4
    with GraphFake() as fake:
        yield fake


def _ig(fake: GraphFake) -> SocialAccountRef:
    return SocialAccountRef(
        network="instagram", access_token="tok", ig_user_id="1784", base_url=fake.url
    )


def test_publishing_creates_a_container_waits_for_it_then_publishes_it(graph: GraphFake) -> None:
    graph.container_polls = 2
    slept: list[float] = []
    result = InstagramPublisher(sleep=slept.append).publish(
        account=_ig(graph), post=SocialPostRequest(text="Hello", image_url=IMAGE)
    )
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in graph.received]
    container_id = calls[1][1]
    assert calls == [
        ("POST", "media"),
        ("GET", container_id),
        ("GET", container_id),
        ("GET", container_id),
        ("POST", "media_publish"),
    ]
    assert len(slept) == 2
    assert graph.posts_for("1784")[0].id == result.external_id
    assert graph.posts_for("1784")[0].image_url == IMAGE


@pytest.mark.parametrize("outcome", ["sandbox-error", "sandbox-expired"])
def test_a_container_that_fails_is_permanent_and_never_published(
    graph: GraphFake, outcome: str
) -> None:
    post = SocialPostRequest(text="Hello", image_url=f"https://cdn.example.com/{outcome}.jpg")
    with pytest.raises(PublishPermanent, match="could not prepare the image"):
        InstagramPublisher(sleep=lambda _: None).publish(account=_ig(graph), post=post)
    assert graph.requests_to("media_publish") == []


def test_a_container_still_in_progress_after_the_bounded_wait_is_transient(
    graph: GraphFake,
) -> None:
    graph.container_polls = 100
    with pytest.raises(PublishTransient, match="not ready after 4 checks"):
        InstagramPublisher(sleep=lambda _: None).publish(
            account=_ig(graph), post=SocialPostRequest(text="Hello", image_url=IMAGE)
        )
    assert graph.requests_to("media_publish") == []
    assert graph.posts_for("1784") == []


def test_an_instagram_post_without_an_image_is_refused_before_any_request(graph: GraphFake) -> None:
    publisher = InstagramPublisher()
    post = SocialPostRequest(text="No picture")
    assert publisher.content_problems(post=post) == ["Instagram needs an image: add an image URL."]
    with pytest.raises(PublishPermanent, match="needs an image"):
        publisher.publish(account=_ig(graph), post=post)
    assert graph.received == []


def test_caption_limits_are_reported_in_plain_words() -> None:
    publisher = InstagramPublisher()
    long_post = SocialPostRequest(text="a" * (CAPTION_LIMIT + 1), image_url=IMAGE)
    assert publisher.content_problems(post=long_post) == [
        f"Instagram caption is {CAPTION_LIMIT + 1} characters; the limit is {CAPTION_LIMIT}."
    ]
    tags = SocialPostRequest(text=" ".join(f"#t{i}" for i in range(31)), image_url=IMAGE)
    assert publisher.content_problems(post=tags) == [
        "Instagram allows 30 hashtags; the caption has 31."
    ]
    relative = SocialPostRequest(text="x", image_url="/media/a.jpg")
    assert publisher.content_problems(post=relative) == [
        "The Instagram image URL must be a public http(s) URL."
    ]
