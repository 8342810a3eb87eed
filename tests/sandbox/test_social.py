"""The Graph and X fakes steered over HTTP, as the admin or a test driving workers in other
processes does, and the inbox they show."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from delivery.publishers.base import PublishTransient, SocialAccountRef, SocialPostRequest
from delivery.publishers.facebook import FacebookPublisher
from delivery.publishers.x import XPublisher
from sandbox.graph import GraphFake
from sandbox.x import XFake


@pytest.fixture
def graph() -> Iterator[GraphFake]:
    with GraphFake() as fake:
        yield fake


@pytest.fixture
def x() -> Iterator[XFake]:
    with XFake() as fake:
        yield fake


def _page(fake: GraphFake, token: str = "") -> SocialAccountRef:
    return SocialAccountRef(
        network="facebook", access_token=token or "tok", page_id="55", base_url=fake.url
    )


def test_graph_code_2_for_everything_can_be_switched_on_and_off_over_http(graph: GraphFake) -> None:
    assert requests.post(f"{graph.url}/__sandbox__/graph-error", json={"code": 2}, timeout=5).ok
    with pytest.raises(PublishTransient) as caught:
        FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="a"))
    assert caught.value.code == 2
    assert requests.delete(f"{graph.url}/__sandbox__/graph-error", timeout=5).ok
    FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="a"))
    posts = requests.get(f"{graph.url}/__sandbox__/posts", timeout=5).json()["posts"]
    assert [(p["network"], p["account"], p["text"]) for p in posts] == [("facebook", "55", "a")]


def test_a_per_token_error_leaves_other_accounts_publishing(graph: GraphFake) -> None:
    graph.fail(token="bad", code=190, subcode=463)
    FacebookPublisher().publish(account=_page(graph, "good"), post=SocialPostRequest(text="a"))
    assert len(graph.posts_for("55")) == 1


def test_a_limited_graph_error_wears_off(graph: GraphFake) -> None:
    graph.fail(code=1, remaining=2)
    for _ in range(2):
        with pytest.raises(PublishTransient):
            FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="b"))
    FacebookPublisher().publish(account=_page(graph), post=SocialPostRequest(text="b"))


@pytest.mark.parametrize(
    "payload", [{}, {"code": "two"}, [1, 2]], ids=["missing", "not-a-number", "not-an-object"]
)
def test_bad_control_payloads_get_a_400_with_the_reason(graph: GraphFake, payload: object) -> None:
    response = requests.post(f"{graph.url}/__sandbox__/graph-error", json=payload, timeout=5)
    assert response.status_code == 400
    assert "code" in response.json()["error"]


def test_graph_rejects_calls_without_a_token_like_graph(graph: GraphFake) -> None:
    response = requests.post(f"{graph.url}/v24.0/55/feed", data={"message": "x"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 190


def test_the_x_fake_takes_errors_over_http_and_lists_posts(x: XFake) -> None:
    account = SocialAccountRef(network="x", access_token="t", x_user_id="1", base_url=x.url)
    x.add_user("t", "1")
    assert requests.post(f"{x.url}/__sandbox__/x-error", json={"status": 503}, timeout=5).ok
    with pytest.raises(PublishTransient):
        XPublisher().publish(account=account, post=SocialPostRequest(text="hi"))
    assert requests.delete(f"{x.url}/__sandbox__/x-error", timeout=5).ok
    XPublisher().publish(account=account, post=SocialPostRequest(text="hi"))
    posts = requests.get(f"{x.url}/__sandbox__/posts", timeout=5).json()["posts"]
    assert [p["sent_text"] for p in posts] == ["hi"]
    inbox = requests.get(f"{x.url}/__sandbox__/received", timeout=5).json()
    assert inbox["name"] == "x" and inbox["count"] == 2
    assert (
        requests.post(
            f"{x.url}/__sandbox__/x-error", json={"detail": "no status"}, timeout=5
        ).status_code
        == 400
    )


def test_the_x_timeline_validates_max_results_like_x(x: XFake) -> None:
    response = requests.get(
        f"{x.url}/2/users/1/tweets",
        params={"max_results": 500},
        headers={"Authorization": "Bearer t"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid Request"
    assert requests.get(f"{x.url}/2/users/1/tweets", timeout=5).status_code == 401
