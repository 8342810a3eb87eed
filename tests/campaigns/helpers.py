"""Drive posts through publishing the way the task loop would, without waiting on back-off."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.test import TestCase
from django.utils import timezone

from campaigns.dispatcher import campaigns_claim_due
from campaigns.models import Campaign, CampaignStatus, SocialPost
from campaigns.publishing import PublishReport, social_post_publish


class Recorder:
    """Stands in for the reroute engine at the dispatcher's narrow edge."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, int]] = []

    def __call__(self, *, campaign_id: int, network: str, window_id: int) -> None:
        self.calls.append((campaign_id, network, window_id))


def claim(*campaigns: Campaign) -> list[SocialPost]:
    for campaign in campaigns:
        Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SCHEDULED)
    campaigns_claim_due()
    return list(SocialPost.objects.filter(campaign__in=campaigns).order_by("id"))


def publish_until_settled(
    post_ids: Iterable[int],
    *,
    network_down: Callable[..., None] | None = None,
    rounds: int = 12,
    **kwargs: Any,
) -> dict[int, list[PublishReport]]:
    """Run each post's task again while its report asks for it (retry or unknown), skipping
    the back-off wait by making the next attempt due now."""
    reports: dict[int, list[PublishReport]] = {pk: [] for pk in post_ids}
    todo = list(reports)
    for _ in range(rounds):
        again = []
        for pk in todo:
            SocialPost.objects.filter(pk=pk, next_attempt_at__isnull=False).update(
                next_attempt_at=timezone.now()
            )
            # Run on_commit side effects (the reroute hand-off) inside a `db` test too.
            with TestCase.captureOnCommitCallbacks(execute=True):
                report = social_post_publish(
                    post_id=pk, network_down=network_down or Recorder(), **kwargs
                )
            reports[pk].append(report)
            if report.retry_after_s is not None:
                again.append(pk)
        if not again:
            break
        todo = again
    return reports
