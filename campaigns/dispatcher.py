"""The scheduled dispatcher: claim due campaigns, make their posts, publish or hand to reroute.

Due times live in PostgreSQL and a beat tick claims them (never far-future Celery ETAs, which
Redis redelivers). The claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` then an UPDATE in the
same transaction, so two beats or workers running the tick at once split the due campaigns
between them and never take one twice. Campaigns missed while the system was down are simply
due in the past: they are claimed at the next tick with their lateness recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, F, IntegerField, Q, Value
from django.db.models.functions import Cast, Extract, Floor, Greatest
from django.utils import timezone

from campaigns.content import campaign_post_request
from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialPost
from outages.selectors import open_window_for

logger = logging.getLogger(__name__)

# Campaign states in which posts may still be published or handed to the reroute engine.
ACTIVE_STATUSES = (
    CampaignStatus.PUBLISHING,
    CampaignStatus.HELD,
    CampaignStatus.PARTIALLY_PUBLISHED,
    CampaignStatus.REROUTED,
)

PublishEnqueue = Callable[[int], None]
NetworkDown = Callable[..., None]


@dataclass
class DispatchReport:
    claimed: list[int] = field(default_factory=list)
    publish: list[int] = field(default_factory=list)
    rerouted: list[tuple[int, str, int]] = field(default_factory=list)


def campaigns_claim_due(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """scheduled -> publishing for due campaigns, oldest first; returns the ids this caller won.

    Lateness (seconds past the scheduled time) is recorded on each claimed campaign."""
    now = now or timezone.now()
    limit = limit or settings.CAMPAIGNS_DISPATCH_BATCH
    with transaction.atomic():
        ids = list(
            Campaign.objects.select_for_update(skip_locked=True)
            .filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=now)
            .order_by("scheduled_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        # Whole seconds past the scheduled time, from each locked row's own value.
        late = Value(now, output_field=DateTimeField()) - F("scheduled_at")
        Campaign.objects.filter(id__in=ids, status=CampaignStatus.SCHEDULED).update(
            status=CampaignStatus.PUBLISHING,
            claimed_at=now,
            updated_at=now,
            lateness_s=Greatest(
                Value(0), Cast(Floor(Extract(late, "epoch")), output_field=IntegerField())
            ),
        )
        _posts_create(ids)
    for campaign_id in ids:
        logger.info(
            "campaign %s claimed for publishing", campaign_id, extra={"campaign": campaign_id}
        )
    return ids


def _posts_create(campaign_ids: list[int]) -> None:
    """One SocialPost per (campaign, account); ON CONFLICT DO NOTHING keeps it idempotent."""
    campaigns = Campaign.objects.filter(pk__in=campaign_ids).prefetch_related("accounts")
    rows = []
    for campaign in campaigns:
        for account in campaign.accounts.all():
            post = campaign_post_request(
                campaign=campaign, network=account.network, account=account
            )
            rows.append(
                SocialPost(
                    workspace_id=campaign.workspace_id,
                    campaign=campaign,
                    account=account,
                    network=account.network,
                    fingerprint=post.fingerprint,
                    lateness_s=campaign.lateness_s,
                )
            )
    SocialPost.objects.bulk_create(rows, ignore_conflicts=True)


def posts_route(
    *,
    post_ids: Iterable[int],
    enqueue_publish: PublishEnqueue | None = None,
    network_down: NetworkDown | None = None,
    report: DispatchReport | None = None,
) -> DispatchReport:
    """For each pending post: its network has an open outage window -> the reroute engine
    (once per campaign and network); otherwise a publish task. Side effects start on commit."""
    report = report or DispatchReport()
    enqueue_publish = enqueue_publish or _publish_enqueue
    network_down = network_down or _network_down
    windows: dict[str, int | None] = {}
    handed: set[tuple[int, str]] = set()
    posts = SocialPost.objects.filter(pk__in=list(post_ids), status=PostStatus.PENDING).values_list(
        "id", "campaign_id", "network"
    )
    for post_id, campaign_id, network in posts.order_by("id"):
        if network not in windows:
            window = open_window_for(network=network)
            windows[network] = window.pk if window is not None else None
        window_id = windows[network]
        if window_id is None:
            report.publish.append(post_id)
            transaction.on_commit(partial(enqueue_publish, post_id))
        elif (campaign_id, network) not in handed:
            handed.add((campaign_id, network))
            report.rerouted.append((campaign_id, network, window_id))
            transaction.on_commit(
                partial(network_down, campaign_id=campaign_id, network=network, window_id=window_id)
            )
    return report


def campaigns_dispatch_due(
    *,
    now: datetime | None = None,
    enqueue_publish: PublishEnqueue | None = None,
    network_down: NetworkDown | None = None,
) -> DispatchReport:
    """The beat tick's main step: claim what is due, then route every new post."""
    report = DispatchReport()
    for _ in range(settings.CAMPAIGNS_DISPATCH_MAX_BATCHES):
        claimed = campaigns_claim_due(now=now)
        if not claimed:
            break
        report.claimed.extend(claimed)
        with transaction.atomic():
            post_ids = SocialPost.objects.filter(
                campaign_id__in=claimed, status=PostStatus.PENDING
            ).values_list("id", flat=True)
            posts_route(
                post_ids=list(post_ids),
                enqueue_publish=enqueue_publish,
                network_down=network_down,
                report=report,
            )
        if len(claimed) < settings.CAMPAIGNS_DISPATCH_BATCH:
            break
    for campaign_id in report.claimed:
        # A campaign with no post to route (all accounts removed) still needs a final status.
        if not SocialPost.objects.filter(campaign_id=campaign_id).exists():
            from campaigns.rollup import campaign_status_rollup

            campaign_status_rollup(campaign_id=campaign_id)
    return report


def posts_sweep(
    *,
    now: datetime | None = None,
    enqueue_publish: PublishEnqueue | None = None,
    network_down: NetworkDown | None = None,
) -> dict[str, int]:
    """Recover posts whose task message was lost (Redis is not the system of record):
    pending or unknown posts overdue are routed again; a post stuck `publishing` past the
    deadline lost its worker mid-call, so its outcome is unknown (checked, never re-sent blind).
    """
    now = now or timezone.now()
    enqueue_publish = enqueue_publish or _publish_enqueue
    stale_pending = now - timedelta(seconds=settings.CAMPAIGNS_PENDING_STALE_S)
    stale_publishing = now - timedelta(seconds=settings.CAMPAIGNS_PUBLISHING_STALE_S)
    with transaction.atomic():
        stuck = list(
            SocialPost.objects.filter(
                status=PostStatus.PUBLISHING, publishing_started_at__lt=stale_publishing
            ).values_list("id", flat=True)
        )
        SocialPost.objects.filter(pk__in=stuck, status=PostStatus.PUBLISHING).update(
            status=PostStatus.UNKNOWN,
            last_error="the worker stopped while publishing; checking the account's posts",
            next_attempt_at=now,
            updated_at=now,
        )
        overdue = Q(next_attempt_at__lt=stale_pending) | Q(
            next_attempt_at__isnull=True, updated_at__lt=stale_pending
        )
        active = Q(campaign__status__in=ACTIVE_STATUSES)
        pending = list(
            SocialPost.objects.filter(active, overdue, status=PostStatus.PENDING).values_list(
                "id", flat=True
            )[: settings.CAMPAIGNS_DISPATCH_BATCH]
        )
        # An unknown post without a next attempt was surfaced to the marketer: leave it.
        unknown = list(
            SocialPost.objects.filter(
                active,
                Q(pk__in=stuck) | Q(next_attempt_at__lt=stale_pending),
                status=PostStatus.UNKNOWN,
                next_attempt_at__isnull=False,
            ).values_list("id", flat=True)[: settings.CAMPAIGNS_DISPATCH_BATCH]
        )
        posts_route(post_ids=pending, enqueue_publish=enqueue_publish, network_down=network_down)
        for post_id in unknown:
            transaction.on_commit(partial(enqueue_publish, post_id))
    return {"stuck": len(stuck), "pending": len(pending), "unknown": len(unknown)}


def _publish_enqueue(post_id: int) -> None:
    from campaigns.tasks import publish_enqueue

    publish_enqueue(post_id)


def _network_down(*, campaign_id: int, network: str, window_id: int) -> None:
    # The reroute engine (campaigns/reroute.py, issue 8) owns what happens next; imported
    # lazily so this module does not depend on its import-time setup.
    from campaigns.reroute import campaign_network_down

    campaign_network_down(campaign_id=campaign_id, network=network, window_id=window_id)
