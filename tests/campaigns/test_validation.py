"""What stops a campaign from being scheduled, in words a marketer can act on."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.errors import CampaignNotReady, CampaignStateConflict
from campaigns.lifecycle import (
    campaign_cancel,
    campaign_duplicate,
    campaign_publish_now,
    campaign_schedule,
)
from campaigns.models import Campaign, CampaignStatus, OutagePolicy, PostStatus
from campaigns.rollup import CHECKING, campaign_status_from_posts
from campaigns.validation import campaign_problems
from tests.campaigns.factories import make_account, make_campaign, make_message

pytestmark = pytest.mark.django_db

LONG = "Our autumn sale starts today with prices cut across the whole shop. " * 6


def _has(problems: list[str], *words: str) -> bool:
    return any(all(word in p for word in words) for p in problems)


def test_a_complete_campaign_has_no_problems_and_schedules() -> None:
    campaign = make_campaign(accounts=[make_account(), make_account(network="x")])
    assert campaign_problems(campaign=campaign) == []
    scheduled = campaign_schedule(campaign=campaign)
    assert scheduled.status == CampaignStatus.SCHEDULED


def test_a_campaign_scheduled_in_the_past_is_refused() -> None:
    campaign = make_campaign(accounts=[make_account()], due_in_s=-3600)
    with pytest.raises(CampaignNotReady) as caught:
        campaign_schedule(campaign=campaign)
    assert _has(caught.value.detail, "in the past")
    assert Campaign.objects.get().status == CampaignStatus.DRAFT


def test_an_explicit_past_time_is_refused_too() -> None:
    campaign = make_campaign(accounts=[make_account()])
    with pytest.raises(CampaignNotReady):
        campaign_schedule(campaign=campaign, scheduled_at=timezone.now() - timedelta(minutes=1))


def test_an_instagram_post_without_an_image_is_refused() -> None:
    campaign = make_campaign(accounts=[make_account(network="instagram")], image_url="")
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "Instagram needs an image")
    # The Instagram override can supply one.
    campaign.overrides = {"instagram": {"image_url": "https://cdn.example.com/a.jpg"}}
    assert campaign_problems(campaign=campaign) == []


def test_text_over_x_limit_is_refused_and_an_x_override_fixes_it() -> None:
    campaign = make_campaign(accounts=[make_account(network="x"), make_account()], text=LONG)
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "X text counts", "the limit is 280")
    campaign.overrides = {"x": {"text": "Autumn sale today"}}
    assert campaign_problems(campaign=campaign) == []


def test_missing_accounts_segment_and_fallback_content_are_each_named() -> None:
    message = make_message(sms_text="", push_title="")
    campaign = make_campaign(segment=None, message=message, name="")
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "name")
    assert _has(problems, "at least one social account")
    assert _has(problems, "audience")
    assert _has(problems, "no SMS content")
    assert _has(problems, "no web push content")


def test_fallback_channels_and_message_are_required_unless_the_policy_is_skip() -> None:
    campaign = make_campaign(accounts=[make_account()], fallback_channels=[], message=None)
    assert _has(campaign_problems(campaign=campaign), "channels you own to fall back to")
    campaign.fallback_channels = ["email", "fax"]
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "Unknown fallback channel", "fax")
    assert _has(problems, "Write the fallback message")
    campaign.outage_policy = OutagePolicy.SKIP
    campaign.fallback_channels = []
    assert campaign_problems(campaign=campaign) == []


def test_an_expired_or_missing_token_and_an_inactive_account_are_named() -> None:
    expired = make_account(display_name="Old page")
    expired.token_expires_at = timezone.now() + timedelta(seconds=10)
    expired.save()
    off = make_account(display_name="Paused page", active=False)
    campaign = make_campaign(accounts=[expired, off], due_in_s=3600)
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "Old page", "reconnect")
    assert _has(problems, "Paused page", "switched off")


def test_whatsapp_needs_a_template_and_no_post_text_rules() -> None:
    campaign = make_campaign(accounts=[make_account(network="whatsapp")])
    assert _has(campaign_problems(campaign=campaign), "WhatsApp", "template")
    assert campaign.message is not None
    campaign.message.whatsapp_template = "autumn_sale"
    campaign.message.save()
    assert not _has(campaign_problems(campaign=campaign), "WhatsApp", "template")


def test_bad_overrides_and_a_hold_longer_than_the_maximum_are_named() -> None:
    campaign = make_campaign(
        accounts=[make_account()],
        overrides={"myspace": {"text": "x"}, "x": {"colour": "red"}},
        outage_policy=OutagePolicy.HOLD_THEN_REROUTE,
        hold_then_reroute_minutes=90,
        max_hold_minutes=60,
    )
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "unknown network", "myspace")
    assert _has(problems, "override for X (Twitter) may only set")
    assert _has(problems, "exceeds the maximum hold")


def test_publish_now_ignores_the_scheduled_time_and_cancel_then_blocks_scheduling() -> None:
    campaign = make_campaign(accounts=[make_account()], due_in_s=None)
    published = campaign_publish_now(campaign=campaign)
    assert published.status == CampaignStatus.SCHEDULED
    assert published.scheduled_at is not None and published.scheduled_at <= timezone.now()
    campaign_cancel(campaign=campaign)
    with pytest.raises(CampaignStateConflict):
        campaign_schedule(campaign=campaign)
    with pytest.raises(CampaignStateConflict):
        campaign_cancel(campaign=campaign)


def test_duplicate_makes_a_draft_with_its_own_message_and_the_same_accounts() -> None:
    accounts = [make_account(), make_account(network="x")]
    campaign = make_campaign(accounts=accounts, status=CampaignStatus.PUBLISHED)
    copy = campaign_duplicate(campaign=campaign)
    assert copy.status == CampaignStatus.DRAFT and copy.scheduled_at is None
    assert set(copy.accounts.all()) == set(accounts)
    assert copy.message_id not in (None, campaign.message_id)
    campaign.refresh_from_db()
    assert campaign.message is not None and copy.message is not None
    assert copy.message.email_subject == campaign.message.email_subject


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({PostStatus.PUBLISHED: 3}, CampaignStatus.PUBLISHED),
        ({PostStatus.PUBLISHED: 2, PostStatus.FAILED: 1}, CampaignStatus.PARTIALLY_PUBLISHED),
        ({PostStatus.FAILED: 2}, CampaignStatus.FAILED),
        ({PostStatus.PUBLISHED: 1, PostStatus.PENDING: 1}, CampaignStatus.PUBLISHING),
        ({PostStatus.PUBLISHED: 1, CHECKING: 1}, CampaignStatus.PUBLISHING),
        ({PostStatus.PUBLISHED: 1, PostStatus.UNKNOWN: 1}, CampaignStatus.PARTIALLY_PUBLISHED),
        ({PostStatus.PUBLISHED: 1, PostStatus.REROUTED: 2}, CampaignStatus.REROUTED),
        ({PostStatus.HELD: 1, PostStatus.REROUTED: 1}, CampaignStatus.HELD),
        ({PostStatus.PUBLISHED: 1, PostStatus.SKIPPED: 1}, CampaignStatus.PUBLISHED),
    ],
)
def test_campaign_status_rolls_up_from_its_posts(statuses: dict[str, int], expected: str) -> None:
    assert campaign_status_from_posts(Counter(statuses)) == expected


def test_a_segment_saved_with_an_invalid_rule_stops_scheduling_and_says_why() -> None:
    from tests.campaigns.factories import make_segment

    segment = make_segment(attribute_filters=[{"key": "city__regex", "op": "eq", "value": "("}])
    campaign = make_campaign(accounts=[make_account()], segment=segment)
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, segment.name, "This rule is invalid", "city__regex")
    with pytest.raises(CampaignNotReady):
        campaign_schedule(campaign=campaign)


def test_a_fallback_message_saved_with_a_bad_template_stops_scheduling_and_says_where() -> None:
    # Saved before the template rules: create() runs no validator.
    message = make_message(sms_text="Hi\n{% load static %}", push_title="{% for x in y %}")
    campaign = make_campaign(accounts=[make_account()], message=message)
    problems = campaign_problems(campaign=campaign)
    assert _has(problems, "SMS text", "Line 2", "{% load %} is not allowed")
    assert _has(problems, "push title", "Line 1", "{% for %} is not allowed")
    with pytest.raises(CampaignNotReady):
        campaign_schedule(campaign=campaign)
