"""A campaign's status from its posts' statuses (after every post outcome, hold or reroute).

One rule for every caller: the publisher after each post outcome, the dispatcher for a
campaign left without posts, and the reroute engine after a hold or a reroute
(``campaign_status_refresh`` is this rollup). Posts are counted one way (an unknown post whose
recent-posts check is still due counts as in flight), and one table says which campaign
statuses the rollup may replace.
"""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialPost

# Statuses the rollup may replace: it never revives a draft, a cancel or a scheduled campaign.
ROLLABLE = (
    CampaignStatus.PUBLISHING,
    CampaignStatus.HELD,
    CampaignStatus.REROUTED,
    CampaignStatus.PUBLISHED,
    CampaignStatus.PARTIALLY_PUBLISHED,
    CampaignStatus.FAILED,
)

# An unknown post whose recent-posts check is still due: in flight, not yet a failure.
CHECKING = "unknown_checking"


def campaign_status_from_posts(counts: Counter[str]) -> str:  # noqa: PLR0911 - one per rule
    """The rule, on its own: in flight -> publishing; any held -> held; any rerouted ->
    rerouted; all published -> published; some -> partially published; none -> failed.
    Skipped posts (cancelled, or the policy said skip) neither help nor hurt."""
    in_flight = counts[PostStatus.PENDING] + counts[PostStatus.PUBLISHING] + counts[CHECKING]
    if in_flight:
        return CampaignStatus.PUBLISHING
    if counts[PostStatus.HELD]:
        return CampaignStatus.HELD
    if counts[PostStatus.REROUTED]:
        return CampaignStatus.REROUTED
    published = counts[PostStatus.PUBLISHED]
    missing = counts[PostStatus.FAILED] + counts[PostStatus.UNKNOWN]
    if published and not missing:
        return CampaignStatus.PUBLISHED
    if published:
        return CampaignStatus.PARTIALLY_PUBLISHED
    if not missing and counts[PostStatus.SKIPPED]:
        return CampaignStatus.PUBLISHED
    return CampaignStatus.FAILED


def campaign_post_counts(*, campaign_id: int) -> Counter[str]:
    """The campaign's posts by status, an unknown post still being checked as ``CHECKING``."""
    return Counter(
        CHECKING if status == PostStatus.UNKNOWN and next_attempt_at is not None else status
        for status, next_attempt_at in SocialPost.objects.filter(
            campaign_id=campaign_id
        ).values_list("status", "next_attempt_at")
    )


def campaign_status_decide(*, current: str, counts: Counter[str]) -> str | None:
    """The status a campaign in ``current`` moves to given its posts, or None to leave it.

    A scheduled campaign moves only once it has posts and none is in flight: the reroute engine
    holds or reroutes the posts of a campaign that fail-back set back to scheduled, and while a
    post of it is pending the dispatcher must still be able to claim it."""
    if current == CampaignStatus.SCHEDULED:
        status = campaign_status_from_posts(counts)
        return status if counts and status != CampaignStatus.PUBLISHING else None
    if current not in ROLLABLE:
        return None
    return campaign_status_from_posts(counts)


def campaign_status_rollup(*, campaign_id: int) -> str | None:
    """Recompute and store the campaign's status; None when its status is not the rollup's to
    change (draft, cancelled, a scheduled campaign still waiting for its posts).

    The campaign row is locked first, so two workers finishing two posts at once cannot
    leave a stale status behind (the later one reads both outcomes)."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None:
            return None
        status = campaign_status_decide(
            current=campaign.status, counts=campaign_post_counts(campaign_id=campaign_id)
        )
        if status is None:
            return None
        if status != campaign.status:
            Campaign.objects.filter(pk=campaign_id).update(status=status, updated_at=timezone.now())
        return status
