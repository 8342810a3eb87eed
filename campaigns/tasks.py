"""Celery edges of campaigns: ids in, one use case, re-enqueue when the report says so.

Names route by continuity.celery.TASK_ROUTES: "campaigns.social.*" runs on the social queue,
the dispatcher tick on control.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from campaigns.dispatcher import campaigns_dispatch_due, posts_sweep
from campaigns.publishing import social_post_publish
from campaigns.self_detection import network_probe, networks_to_probe

logger = logging.getLogger(__name__)

DISPATCH_TASK = "campaigns.dispatch_due"
PUBLISH_TASK = "campaigns.social.publish_post"
PROBE_TASK = "campaigns.social.probe_network"
DRILL_TASK = "campaigns.drill_run"


@shared_task(name=DISPATCH_TASK, ignore_result=True)
def dispatch_due() -> dict[str, int]:
    report = campaigns_dispatch_due()
    swept = posts_sweep()
    networks = networks_to_probe()
    for network in networks:
        probe_enqueue(network)
    return {
        "claimed": len(report.claimed),
        "publish": len(report.publish),
        "rerouted": len(report.rerouted),
        "probes": len(networks),
        **{f"swept_{key}": value for key, value in swept.items()},
    }


@shared_task(name=PUBLISH_TASK, ignore_result=True)
def publish_post(post_id: int) -> str:
    report = social_post_publish(post_id=post_id)
    wait = report.retry_after_s
    # Long waits are left to the sweeper (the post's next_attempt_at is in PostgreSQL): a
    # far-future countdown on Redis would be redelivered after the visibility timeout.
    if wait is not None and wait <= settings.CAMPAIGNS_RETRY_COUNTDOWN_MAX_S:
        publish_enqueue(post_id, countdown=wait)
    return report.outcome


@shared_task(name=PROBE_TASK, ignore_result=True)
def probe_network(network: str) -> bool:
    return network_probe(network=network)


@shared_task(name=DRILL_TASK, ignore_result=True)
def drill_run(workspace_id: int, network: str, campaign_ids: list[int] | None) -> str:
    from campaigns.drill import drill_run_execute

    return drill_run_execute(workspace_id=workspace_id, network=network, campaign_ids=campaign_ids)


def drill_enqueue(*, workspace_id: int, network: str, campaign_ids: list[int] | None) -> None:
    from continuity.celery import app

    app.send_task(DRILL_TASK, args=[workspace_id, network, campaign_ids])


def publish_enqueue(post_id: int, countdown: float | None = None) -> None:
    from continuity.celery import app

    app.send_task(PUBLISH_TASK, args=[post_id], countdown=countdown or None)


def probe_enqueue(network: str) -> None:
    from continuity.celery import app

    app.send_task(PROBE_TASK, args=[network])


def dispatch_enqueue() -> None:
    from continuity.celery import app

    app.send_task(DISPATCH_TASK)
