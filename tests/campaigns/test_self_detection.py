"""Self-detection end to end in one process: the Graph fake answers code 2 for everything,
our own publishing opens Facebook and Instagram windows while X keeps publishing, and the probe
closes them when the Graph API works again."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import PostStatus, PublishAttempt, SocialPost
from campaigns.self_detection import network_health_check, network_probe, networks_to_probe
from outages.models import OpenedBy, OutageWindow, WindowState
from outages.windows import outage_declare
from sandbox.graph import GraphFake, graph_fault
from sandbox.x import XFake
from tests.campaigns.factories import make_account, make_campaign
from tests.campaigns.helpers import Recorder, claim, publish_until_settled

pytestmark = pytest.mark.django_db


def _open(network: str) -> OutageWindow | None:
    return OutageWindow.objects.filter(network=network, state=WindowState.OPEN).first()


def test_graph_code_2_for_everything_opens_facebook_and_instagram_while_x_publishes(
    graph: GraphFake, x: XFake, settings: Any
) -> None:
    settings.CAMPAIGNS_PUBLISH_MAX_ATTEMPTS = 4
    accounts = [
        *(make_account(network="facebook") for _ in range(3)),
        *(make_account(network="instagram") for _ in range(3)),
        *(make_account(network="x") for _ in range(2)),
    ]
    campaign = make_campaign(accounts=accounts, due_in_s=-1)
    posts = claim(campaign)
    graph.set_fault(graph_fault(2))
    reroute = Recorder()

    publish_until_settled([p.pk for p in posts], network_down=reroute)

    for network in ("facebook", "instagram"):
        window = _open(network)
        assert window is not None, network
        assert window.opened_by == OpenedBy.SELF_DETECTED
        assert "transient failure(s)" in window.reason
        # Once the window is open the remaining posts go to the reroute engine, not the network.
        assert (campaign.pk, network, window.pk) in reroute.calls
    assert _open("x") is None
    assert SocialPost.objects.filter(network="x", status=PostStatus.PUBLISHED).count() == 2
    assert len(x.tweets) == 2
    assert graph.posts == []

    # The Graph API comes back: the probe closes both windows.
    graph.clear_fault()
    assert networks_to_probe() == ["facebook", "instagram"]
    assert network_probe(network="facebook") is True
    assert network_probe(network="instagram") is True
    assert _open("facebook") is None and _open("instagram") is None
    assert PublishAttempt.objects.filter(probe=True, kind="ok").count() >= 4


def test_a_probe_while_the_network_still_fails_keeps_the_window_open(graph: GraphFake) -> None:
    accounts = [make_account() for _ in range(2)]
    graph.set_fault(graph_fault(2))
    for account in accounts:
        for _ in range(3):
            PublishAttempt.objects.create(
                workspace_id=account.workspace_id,
                at=_now(),
                network="facebook",
                account=account,
                kind="transient",
            )
    assert network_health_check(network="facebook") is not None
    assert network_probe(network="facebook") is False
    assert _open("facebook") is not None


def test_throttling_and_permanent_errors_never_open_a_window(graph: GraphFake) -> None:
    accounts = [make_account() for _ in range(3)]
    expired = make_account(token="expired-x")
    campaign = make_campaign(accounts=[*accounts, expired], due_in_s=-1)
    posts = claim(campaign)
    graph.fail(code=4)  # throttled, everywhere
    for _ in range(3):
        publish_until_settled([p.pk for p in posts], rounds=1)
        SocialPost.objects.filter(status=PostStatus.PENDING).update(next_attempt_at=None)
    assert PublishAttempt.objects.filter(kind="throttled").count() >= 9
    assert network_health_check(network="facebook") is None
    assert _open("facebook") is None


def test_one_broken_account_alone_does_not_declare_the_network_down(graph: GraphFake) -> None:
    (account,) = [make_account()]
    for _ in range(10):
        PublishAttempt.objects.create(
            workspace_id=account.workspace_id,
            at=_now(),
            network="facebook",
            account=account,
            kind="transient",
        )
    assert network_health_check(network="facebook") is None


def test_a_monitor_window_is_not_closed_by_our_probe(graph: GraphFake) -> None:
    make_account()
    outage_declare(network="facebook", reason="the status page says so", actor="ops")
    assert networks_to_probe() == []
    assert network_probe(network="facebook") is False
    assert _open("facebook") is not None


def test_failures_from_before_a_window_closed_do_not_reopen_it(graph: GraphFake) -> None:
    accounts = [make_account() for _ in range(2)]
    for account in accounts:
        for _ in range(3):
            PublishAttempt.objects.create(
                workspace_id=account.workspace_id,
                at=_now(),
                network="facebook",
                account=account,
                kind="transient",
            )
    assert network_health_check(network="facebook") is not None
    assert network_probe(network="facebook") is True
    assert network_health_check(network="facebook") is None


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()
