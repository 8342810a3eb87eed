"""The building blocks together: the Graph fake answers code 2 for everything, publishing
outcomes feed the health rule, Facebook and Instagram cross it while X keeps publishing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from delivery.publishers import publisher_for
from delivery.publishers.base import PublishError, SocialAccountRef, SocialPostRequest
from delivery.publishers.health import PublishOutcome, networks_failing
from sandbox.graph import GraphFake, graph_fault
from sandbox.x import XFake


@pytest.fixture
def fakes(settings: Any) -> Iterator[tuple[GraphFake, XFake]]:
    settings.SOCIAL_IG_CONTAINER_POLL_INTERVAL_S = 0.0
    with GraphFake() as graph, XFake() as x:
        yield graph, x


def _attempt(account: SocialAccountRef, post: SocialPostRequest) -> PublishOutcome:
    try:
        publisher_for(network=account.network).publish(account=account, post=post)
    except PublishError as exc:
        return PublishOutcome(datetime.now(UTC), account.network, account.key, exc.kind)
    return PublishOutcome(datetime.now(UTC), account.network, account.key, "ok")


def test_graph_failing_with_code_2_is_detected_for_facebook_and_instagram_only(
    fakes: tuple[GraphFake, XFake],
) -> None:
    graph, x = fakes
    accounts = []
    for n in range(3):
        accounts.append(
            SocialAccountRef(
                network="facebook", access_token=f"fb{n}", page_id=f"p{n}", base_url=graph.url
            )
        )
        accounts.append(
            SocialAccountRef(
                network="instagram", access_token=f"ig{n}", ig_user_id=f"i{n}", base_url=graph.url
            )
        )
        accounts.append(
            SocialAccountRef(network="x", access_token=f"x{n}", x_user_id=f"x{n}", base_url=x.url)
        )
        x.add_user(f"x{n}", f"x{n}")
    # One expired page token: permanent, and it must not tip anything over by itself.
    graph.fail(token="fb0", code=190, subcode=463)
    healthy = [
        _attempt(a, SocialPostRequest(text="before", image_url="https://cdn.example.com/a.jpg"))
        for a in accounts
    ]
    assert networks_failing(outcomes=healthy, now=datetime.now(UTC)) == []

    graph.set_fault(graph_fault(2))
    outcomes = list(healthy)
    for round_ in range(2):
        for account in accounts:
            post = SocialPostRequest(
                text=f"round {round_}", image_url="https://cdn.example.com/a.jpg"
            )
            outcomes.append(_attempt(account, post))

    failing = networks_failing(outcomes=outcomes, now=datetime.now(UTC))
    assert [v.network for v in failing] == ["facebook", "instagram"]
    assert all(v.accounts >= 2 for v in failing)
    assert [o.kind for o in outcomes if o.network == "x"] == ["ok"] * 9
    assert len(x.tweets) == 9
