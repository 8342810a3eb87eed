from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from delivery.publishers.base import (
    PublishError,
    PublishPermanent,
    PublishThrottled,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
)
from delivery.publishers.facebook import FACEBOOK_TEXT_LIMIT, FacebookPublisher
from sandbox.graph import GraphFake, graph_fault
from tests.delivery.publishers.contract import Fake, PublisherContract

GRAPH_CASES: dict[str, type[PublishError]] = {
    "code-1": PublishTransient,
    "code-2": PublishTransient,
    "code-4": PublishThrottled,
    "code-17": PublishThrottled,
    "code-32": PublishThrottled,
    "code-341": PublishThrottled,
    "code-613": PublishThrottled,
    "code-190-463": PublishPermanent,
    "code-368": PublishPermanent,
    "code-506": PublishPermanent,
    "code-100": PublishPermanent,
    "expired-token": PublishPermanent,
}


def inject_graph_error(fake: GraphFake, account: SocialAccountRef, case: str) -> SocialAccountRef:
    if case == "expired-token":
        return SocialAccountRef(**{**account.__dict__, "access_token": "expired-EAAG123"})
    _, code, *sub = case.split("-")
    fake.fail(token=account.access_token, code=int(code), subcode=int(sub[0]) if sub else None)
    return account


class TestFacebookContract(PublisherContract):
    network = "facebook"
    error_cases: ClassVar[dict[str, type[PublishError]]] = GRAPH_CASES
    send_path = r"/feed$"

    def make_fake(self) -> Fake:
        return GraphFake()

    def make_account(self, fake: Fake, token: str) -> SocialAccountRef:
        return SocialAccountRef(
            network="facebook", access_token=token, page_id="1001", base_url=fake.url
        )

    def stored_ids(self, fake: Fake, account: SocialAccountRef) -> list[str]:
        assert isinstance(fake, GraphFake)
        return [p.id for p in fake.posts_for(account.page_id)]

    def inject_error(self, fake: Fake, account: SocialAccountRef, case: str) -> SocialAccountRef:
        assert isinstance(fake, GraphFake)
        return inject_graph_error(fake, account, case)


@pytest.fixture
def graph() -> object:
    with GraphFake() as fake:
        yield fake


def _page(fake: GraphFake, page: str = "2002") -> SocialAccountRef:
    return SocialAccountRef(network="facebook", access_token="tok", page_id=page, base_url=fake.url)


def test_a_feed_post_sends_message_and_link_as_graph_expects(
    graph: GraphFake, settings: object
) -> None:
    FacebookPublisher().publish(
        account=_page(graph), post=SocialPostRequest(text="Hi", link="https://a.example/x")
    )
    [request] = graph.requests_to(r"/feed$")
    assert request.path == f"/{settings.SOCIAL_GRAPH_API_VERSION}/2002/feed"  # type: ignore[attr-defined]
    assert request.headers["Authorization"] == "Bearer tok"
    assert "access_token" not in request.query and b"tok" not in request.body
    assert graph.posts_for("2002")[0].link == "https://a.example/x"


def test_find_recent_ignores_older_posts_other_text_and_other_pages(graph: GraphFake) -> None:
    publisher = FacebookPublisher()
    wanted = SocialPostRequest(text="Doors open at   9")
    publisher.publish(account=_page(graph), post=SocialPostRequest(text="Something else"))
    publisher.publish(account=_page(graph, "3003"), post=wanted)
    assert (
        publisher.find_recent(
            account=_page(graph), post=wanted, since=datetime.now(UTC) - timedelta(seconds=5)
        )
        is None
    )
    mine = publisher.publish(account=_page(graph), post=SocialPostRequest(text="Doors open at 9"))
    found = publisher.find_recent(
        account=_page(graph), post=wanted, since=datetime.now(UTC) - timedelta(seconds=5)
    )
    assert found == mine.external_id
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert publisher.find_recent(account=_page(graph), post=wanted, since=later) is None


def test_a_connection_reset_after_sending_is_unknown_and_nothing_is_found(graph: GraphFake) -> None:
    publisher = FacebookPublisher()
    graph.set_fault(mode="reset", remaining=1)
    post = SocialPostRequest(text="reset me")
    with pytest.raises(PublishUnknown):
        publisher.publish(account=_page(graph), post=post)
    # The fake dropped the connection before acting, so reconciling finds nothing: safe to retry.
    assert (
        publisher.find_recent(
            account=_page(graph), post=post, since=datetime.now(UTC) - timedelta(seconds=5)
        )
        is None
    )


def test_code_2_for_everything_through_the_base_switch_is_transient(graph: GraphFake) -> None:
    graph.set_fault(graph_fault(2))
    with pytest.raises(PublishTransient) as caught:
        FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="x"))
    assert caught.value.code == 2
    assert caught.value.trace_id


def test_throttling_uses_the_business_use_case_estimate(graph: GraphFake) -> None:
    graph.set_fault(
        mode="error",
        status=400,
        body='{"error": {"message": "(#80001) too many calls", "code": 80001}}',
        remaining=1,
    )
    # Business use case throttles carry their wait in a header the base fake cannot add, so
    # the header path is checked on the parser directly below.
    with pytest.raises(PublishThrottled):
        FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="x"))


def test_retry_after_prefers_graphs_estimated_time_to_regain_access() -> None:
    import requests

    from delivery.publishers.graph_api import graph_error

    response = requests.Response()
    response.status_code = 400
    response._content = b'{"error": {"message": "limit", "code": 17}}'
    response.headers["X-Business-Use-Case-Usage"] = (
        '{"123": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 3}]}'
    )
    error = graph_error(response, network="facebook", sends=True)
    assert isinstance(error, PublishThrottled)
    assert error.retry_after_s == 180


def test_expired_token_names_the_reason_for_the_marketer(graph: GraphFake) -> None:
    graph.fail(token="tok", code=190, subcode=463)
    with pytest.raises(PublishPermanent) as caught:
        FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="x"))
    assert caught.value.needs_reauth
    assert "expired" in caught.value.detail


def test_content_problems_cover_empty_and_overlong_posts() -> None:
    publisher = FacebookPublisher()
    assert publisher.content_problems(post=SocialPostRequest(text="fine")) == []
    assert publisher.content_problems(post=SocialPostRequest(text="  ")) == [
        "Facebook needs text or a link."
    ]
    [problem] = publisher.content_problems(
        post=SocialPostRequest(text="a" * (FACEBOOK_TEXT_LIMIT + 1))
    )
    assert str(FACEBOOK_TEXT_LIMIT) in problem
