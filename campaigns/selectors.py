"""Reads other apps (and this app's edges) need."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count, QuerySet

from campaigns.language_counts import campaign_language_counts
from campaigns.models import Campaign, CampaignStatus, Reroute, SocialPost
from continuity.models import Workspace
from continuity.tenancy import workspace_get_or_404
from delivery.models import Delivery

# Campaigns an outage can still change: not yet published, or publishing, or waiting.
OUTAGE_SENSITIVE = (CampaignStatus.SCHEDULED, CampaignStatus.PUBLISHING, CampaignStatus.HELD)


def campaigns_affected_count(*, network: str) -> int:
    """How many campaigns an outage on ``network`` would touch (settings.OUTAGES_IMPACT_COUNTER)."""
    return (
        Campaign.objects.filter(status__in=OUTAGE_SENSITIVE, accounts__network=network)
        .distinct()
        .count()
    )


def campaign_get(
    *, workspace: Workspace | int, pk: object, queryset: QuerySet[Campaign] | None = None
) -> Campaign:
    """The workspace's campaign with this id; Http404 for a missing or another workspace's."""
    return workspace_get_or_404(
        queryset if queryset is not None else Campaign.objects.all(), workspace=workspace, pk=pk
    )


def campaigns_of(*, workspace: Workspace | int) -> QuerySet[Campaign]:
    return Campaign.objects.for_workspace(workspace)


def reroutes_of(*, workspace: Workspace | int) -> QuerySet[Reroute]:
    """The workspace's reroutes: an outage is install-wide, what it did to campaigns is not."""
    return Reroute.objects.for_workspace(workspace)


def campaign_post_counts(*, campaign: Campaign) -> dict[str, dict[str, int]]:
    """{network: {status: n}} over the campaign's social posts."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        SocialPost.objects.filter(campaign=campaign)
        .values("network", "status")
        .annotate(n=Count("id"))
        .order_by("network", "status")
    )
    for row in rows:
        counts[row["network"]][row["status"]] = row["n"]
    return dict(counts)


def campaign_delivery_counts(*, campaign: Campaign) -> dict[str, dict[str, int]]:
    """{channel: {status: n}} over the Deliveries of the campaign's fallback message."""
    if campaign.message_id is None:
        return {}
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        Delivery.objects.for_workspace(campaign.workspace_id)
        .filter(message_id=campaign.message_id)
        .values("channel", "status")
        .annotate(n=Count("id"))
        .order_by("channel", "status")
    )
    for row in rows:
        counts[row["channel"]][row["status"]] = row["n"]
    return dict(counts)


def campaign_status_summary(*, campaign: Campaign) -> dict[str, Any]:
    posts = list(
        SocialPost.objects.filter(campaign=campaign)
        .select_related("account")
        .order_by("network", "account__display_name")
    )
    return {
        "id": campaign.pk,
        "status": campaign.status,
        "scheduled_at": campaign.scheduled_at,
        "claimed_at": campaign.claimed_at,
        "lateness_s": campaign.lateness_s,
        "networks": campaign_post_counts(campaign=campaign),
        "channels": campaign_delivery_counts(campaign=campaign),
        # {channel: {language: {status: n}}} (campaigns/language_counts.py).
        "languages": campaign_language_counts(workspace=campaign.workspace, campaign=campaign),
        "posts": [
            {
                "id": post.pk,
                "account": post.account.display_name,
                "account_id": post.account_id,
                "network": post.network,
                "status": post.status,
                "external_id": post.external_id,
                "attempts": post.attempts,
                "last_error": post.last_error,
                "published_at": post.published_at,
                "lateness_s": post.lateness_s,
            }
            for post in posts
        ],
    }
