"""The demo company that `make run` seeds once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from campaigns.drill import outage_drill
from campaigns.models import Campaign, SocialPost
from contacts.models import Consent, Contact, PushSubscription
from outages.credentials import source_secrets
from outages.models import MonitorSource
from sandbox.demo import DEMO_SOURCE_SLUG, demo_seed

pytestmark = pytest.mark.django_db


def test_the_demo_is_seeded_once_with_a_working_monitor_secret(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    info = demo_seed(contacts=300)
    assert info.created
    assert Contact.objects.count() == 300
    assert Consent.objects.filter(state="granted").exists()
    assert PushSubscription.objects.exists()
    assert Campaign.objects.filter(status="scheduled").count() == 3
    assert set(SocialPost.objects.values_list("network", flat=True)) == {
        "facebook",
        "instagram",
        "x",
    }
    source = MonitorSource.objects.get(slug=DEMO_SOURCE_SLUG)
    assert source_secrets(source=source) == [info.token_file.read_text()]
    again = demo_seed(contacts=300)
    assert not again.created
    assert Contact.objects.count() == 300
    drill = outage_drill(network="instagram")
    assert len(drill.campaigns) == 3
    assert sum(drill.planned.values()) > 0


def test_a_later_run_schedules_a_new_round_once_the_demo_campaigns_went_out(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    demo_seed(contacts=50)
    assert not demo_seed(contacts=50).rescheduled  # still due: nothing new

    Campaign.objects.update(status="published", scheduled_at=timezone.now() - timedelta(days=2))
    again = demo_seed(contacts=50)

    assert again.rescheduled and not again.created
    upcoming = Campaign.objects.filter(status="scheduled", scheduled_at__gt=timezone.now())
    assert upcoming.count() == 3
    assert SocialPost.objects.filter(campaign__in=upcoming).count() == 6
    assert not demo_seed(contacts=50).rescheduled
