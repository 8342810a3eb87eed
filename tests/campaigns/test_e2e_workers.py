"""Real `celery worker` and two `celery beat` processes publish three campaigns due in a few
seconds to the Graph and X fakes: on time, each exactly once per account."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialPost
from sandbox.graph import GraphFake
from sandbox.x import XFake
from tests.campaigns.conftest import TOKEN_KEY
from tests.campaigns.factories import make_account, make_campaign
from tests.harness import ProcessHandle, eventually, start_beat

pytestmark = pytest.mark.e2e


def test_three_campaigns_due_now_publish_once_per_account_with_two_beats_running(
    graph: GraphFake,
    x: XFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    fb = make_account(network="facebook")
    ig = make_account(network="instagram")
    tw = make_account(network="x", token="e2e-x-token")
    x.add_user("e2e-x-token", tw.x_user_id)
    # A warm-up campaign due now proves both beats tick before the three are due, so their
    # lateness measures the dispatcher, not how long a loaded machine takes to start processes.
    warm_up = make_campaign(
        accounts=[tw], text="Warm-up", scheduled_at=timezone.now(), status=CampaignStatus.SCHEDULED
    )
    env = {
        **worker_env,
        "SOCIAL_GRAPH_BASE_URL": graph.url,
        "SOCIAL_X_BASE_URL": x.url,
        "SOCIAL_TOKEN_KEYS": TOKEN_KEY,
        "SOCIAL_IG_CONTAINER_POLL_INTERVAL_S": "0.05",
        "CAMPAIGNS_DISPATCH_INTERVAL_S": "1",
    }
    celery_worker_process(queues=["control", "social"], concurrency=2, env_extra=env)
    # Two beats: a misconfiguration the dispatcher must survive without a double post.
    beats = [start_beat(env=env), start_beat(env=env)]
    try:
        eventually(
            lambda: Campaign.objects.filter(
                pk=warm_up.pk, status=CampaignStatus.PUBLISHED
            ).exists(),
            timeout=120,
        )
        due = timezone.now() + timedelta(seconds=4)
        campaigns = [
            make_campaign(
                accounts=[fb, ig, tw],
                text=f"Campaign {n}: autumn sale",
                scheduled_at=due,
                status=CampaignStatus.SCHEDULED,
            )
            for n in range(3)
        ]
        eventually(
            lambda: (
                Campaign.objects.filter(
                    pk__in=[c.pk for c in campaigns], status=CampaignStatus.PUBLISHED
                ).count()
                == 3
            ),
            timeout=120,
        )
    finally:
        for beat in beats:
            beat.stop()

    assert SocialPost.objects.filter(status=PostStatus.PUBLISHED).count() == 9 + 1
    for campaign in Campaign.objects.filter(pk__in=[c.pk for c in campaigns]):
        # On time: claimed within a few beat ticks of its scheduled time.
        assert campaign.claimed_at is not None and campaign.claimed_at >= due
        assert campaign.lateness_s <= 10
    expected = Counter({f"Campaign {n}: autumn sale": 1 for n in range(3)})
    assert Counter(p.text for p in graph.posts_for(fb.page_id)) == expected
    captions = Counter(p.text.split("\n")[0] for p in graph.posts_for(ig.ig_user_id))
    assert captions == expected
    tweets = Counter(t.text.split("\n")[0] for t in x.tweets_by(tw.x_user_id))
    assert tweets == expected + Counter({"Warm-up": 1})


def test_graph_failing_opens_facebook_and_instagram_outages_from_workers_while_x_publishes(
    graph: GraphFake,
    x: XFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    from continuity.celery import app
    from outages.models import OpenedBy, OutageWindow, WindowState
    from sandbox.graph import graph_fault

    accounts = [make_account(network="facebook") for _ in range(3)]
    accounts += [make_account(network="instagram") for _ in range(3)]
    tw = make_account(network="x", token="e2e-x-token-2")
    x.add_user("e2e-x-token-2", tw.x_user_id)
    make_campaign(
        accounts=[*accounts, tw],
        scheduled_at=timezone.now() - timedelta(seconds=1),
        status=CampaignStatus.SCHEDULED,
    )
    graph.set_fault(graph_fault(2))
    env = {
        **worker_env,
        "SOCIAL_GRAPH_BASE_URL": graph.url,
        "SOCIAL_X_BASE_URL": x.url,
        "CAMPAIGNS_PUBLISH_RETRY_BASE_S": "0.1",
        "CAMPAIGNS_PROBE_INTERVAL_S": "1",
    }
    celery_worker_process(queues=["control", "social"], concurrency=2, env_extra=env)
    app.send_task("campaigns.dispatch_due")

    def self_detected(network: str) -> bool:
        return OutageWindow.objects.filter(
            network=network, state=WindowState.OPEN, opened_by=OpenedBy.SELF_DETECTED
        ).exists()

    eventually(lambda: self_detected("facebook") and self_detected("instagram"), timeout=120)
    eventually(
        lambda: SocialPost.objects.filter(network="x", status=PostStatus.PUBLISHED).exists(),
        timeout=120,
    )
    assert not OutageWindow.objects.filter(network="x").exists()
    assert graph.posts == []

    # The Graph API recovers: the tick's probes close both windows.
    graph.clear_fault()

    def closed() -> bool:
        app.send_task("campaigns.dispatch_due")
        return not OutageWindow.objects.filter(state=WindowState.OPEN).exists()

    eventually(closed, timeout=120, interval=1.0)
