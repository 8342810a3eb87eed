"""One campaign status rule: the reroute engine and the publisher's rollup agree."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialPost
from campaigns.reroute import campaign_network_down
from campaigns.rollup import campaign_status_rollup
from tests.campaigns.reroute_factories import make_campaign, network_down

pytestmark = pytest.mark.django_db
NO_QUIET = override_settings(REROUTE_QUIET_HOURS={}, REROUTE_FREQUENCY_CAP_PER_DAY=0)


def _checking_and_rerouted() -> Campaign:
    """A campaign whose Facebook post is unknown with its recent-posts check due, and whose
    Instagram post the reroute engine takes over when Instagram goes down."""
    campaign = make_campaign(networks=("facebook", "instagram"), status=CampaignStatus.PUBLISHING)
    SocialPost.objects.filter(campaign=campaign, network="facebook").update(
        status=PostStatus.UNKNOWN, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    window = network_down("instagram")
    reroute = campaign_network_down(
        campaign_id=campaign.pk, network="instagram", window_id=window.pk, send=lambda *a, **k: None
    )
    assert reroute is not None
    return campaign


@NO_QUIET
def test_a_post_still_being_checked_keeps_a_rerouted_campaign_publishing() -> None:
    campaign = _checking_and_rerouted()
    campaign.refresh_from_db()
    # The reroute engine used to read the checking post as a plain unknown (a loss) and say
    # "rerouted" while the publisher's rollup said "publishing" for the same posts.
    assert campaign.status == CampaignStatus.PUBLISHING
    assert campaign_status_rollup(campaign_id=campaign.pk) == CampaignStatus.PUBLISHING
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PUBLISHING


@NO_QUIET
def test_once_the_check_gives_up_both_paths_say_rerouted() -> None:
    campaign = _checking_and_rerouted()
    SocialPost.objects.filter(campaign=campaign, network="facebook").update(next_attempt_at=None)
    assert campaign_status_rollup(campaign_id=campaign.pk) == CampaignStatus.REROUTED


@NO_QUIET
def test_a_scheduled_campaign_with_a_pending_post_stays_claimable() -> None:
    campaign = make_campaign(networks=("facebook",), status=CampaignStatus.SCHEDULED)
    assert campaign_status_rollup(campaign_id=campaign.pk) is None
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED


@NO_QUIET
def test_a_scheduled_campaign_whose_posts_are_held_becomes_held() -> None:
    campaign = make_campaign(networks=("facebook",), status=CampaignStatus.SCHEDULED)
    SocialPost.objects.filter(campaign=campaign).update(status=PostStatus.HELD)
    assert campaign_status_rollup(campaign_id=campaign.pk) == CampaignStatus.HELD


def test_a_scheduled_campaign_without_posts_is_left_alone() -> None:
    campaign = make_campaign(networks=(), status=CampaignStatus.SCHEDULED)
    assert campaign_status_rollup(campaign_id=campaign.pk) is None
