"""Task routing, the beat entry, and the impact counter outages/ asks for."""

from __future__ import annotations

import pytest

from campaigns.models import CampaignStatus
from campaigns.selectors import campaigns_affected_count
from campaigns.tasks import DISPATCH_TASK, PROBE_TASK, PUBLISH_TASK
from continuity.celery import QUEUE_CONTROL, QUEUE_SOCIAL, _beat_schedule, app
from outages.impact import outage_impact_count
from tests.campaigns.factories import make_account, make_campaign


def _queue(name: str) -> str:
    route = app.amqp.router.route({}, name)
    return str(route["queue"].name)


def test_publish_and_probe_run_on_the_social_queue_and_the_tick_on_control() -> None:
    assert _queue(PUBLISH_TASK) == QUEUE_SOCIAL
    assert _queue(PROBE_TASK) == QUEUE_SOCIAL
    assert _queue(DISPATCH_TASK) == QUEUE_CONTROL
    entry = _beat_schedule()["campaigns.dispatch_due"]
    assert entry["task"] == DISPATCH_TASK
    assert entry["schedule"].total_seconds() <= 10


@pytest.mark.django_db
def test_the_impact_counter_counts_campaigns_an_outage_would_touch() -> None:
    fb, tw = make_account(), make_account(network="x")
    make_campaign(accounts=[fb, tw], status=CampaignStatus.SCHEDULED)
    make_campaign(accounts=[fb], status=CampaignStatus.PUBLISHING)
    make_campaign(accounts=[fb], status=CampaignStatus.PUBLISHED)
    make_campaign(accounts=[tw], status=CampaignStatus.DRAFT)
    assert campaigns_affected_count(network="facebook") == 2
    assert campaigns_affected_count(network="x") == 1
    assert outage_impact_count(network="facebook") == 2
    assert outage_impact_count(network="instagram") == 0
