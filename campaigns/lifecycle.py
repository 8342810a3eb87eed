"""A campaign's marketer-driven changes: schedule, publish now, cancel, duplicate."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.errors import CampaignNotReady, CampaignStateConflict
from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialPost
from campaigns.validation import campaign_problems
from delivery.models import Message

logger = logging.getLogger(__name__)

SCHEDULABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
CANCELLABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.PUBLISHING,
    CampaignStatus.HELD,
    # Rerouting may still be sending: cancelling stops what has not gone out yet.
    CampaignStatus.REROUTED,
    CampaignStatus.PARTIALLY_PUBLISHED,
)


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update().get(pk=campaign.pk)


def campaign_schedule(
    *, campaign: Campaign, scheduled_at: datetime | None = None, now: datetime | None = None
) -> Campaign:
    """Draft (or already scheduled) -> scheduled at ``scheduled_at`` (default: its own time).

    Raises CampaignNotReady with every problem when it cannot be scheduled."""
    with transaction.atomic():
        locked = _locked(campaign)
        if locked.status not in SCHEDULABLE:
            raise CampaignStateConflict(
                _("A %(status)s campaign cannot be scheduled.")
                % {"status": locked.get_status_display().lower()}
            )
        if scheduled_at is not None:
            if timezone.is_naive(scheduled_at):
                raise CampaignNotReady([_("The scheduled time needs a timezone (UTC offset).")])
            locked.scheduled_at = scheduled_at
        problems = campaign_problems(campaign=locked, now=now)
        if problems:
            raise CampaignNotReady(problems)
        locked.status = CampaignStatus.SCHEDULED
        locked.save(update_fields=["status", "scheduled_at", "updated_at"])
    logger.info("campaign %s scheduled for %s", locked.pk, locked.scheduled_at)
    return locked


def campaign_publish_now(*, campaign: Campaign) -> Campaign:
    """Schedule for right now and ask the dispatcher to run at once (not at its next tick)."""
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(campaign)
        if locked.status not in SCHEDULABLE:
            raise CampaignStateConflict(
                _("A %(status)s campaign cannot be published now.")
                % {"status": locked.get_status_display().lower()}
            )
        problems = campaign_problems(campaign=locked, now=now, check_schedule=False)
        if problems:
            raise CampaignNotReady(problems)
        locked.scheduled_at = now
        locked.status = CampaignStatus.SCHEDULED
        locked.save(update_fields=["status", "scheduled_at", "updated_at"])
        transaction.on_commit(_kick_dispatcher)
    return locked


def _kick_dispatcher() -> None:
    from campaigns.tasks import dispatch_enqueue

    dispatch_enqueue()


def campaign_cancel(*, campaign: Campaign, reason: str = "cancelled by the marketer") -> Campaign:
    """Stop what has not happened yet: posts still pending or held are skipped. A post already
    being published cannot be recalled and finishes as it ends."""
    with transaction.atomic():
        locked = _locked(campaign)
        if locked.status not in CANCELLABLE:
            raise CampaignStateConflict(
                _("A %(status)s campaign cannot be cancelled.")
                % {"status": locked.get_status_display().lower()}
            )
        locked.status = CampaignStatus.CANCELLED
        locked.save(update_fields=["status", "updated_at"])
        SocialPost.objects.filter(
            campaign=locked, status__in=[PostStatus.PENDING, PostStatus.HELD]
        ).update(status=PostStatus.SKIPPED, last_error=reason[:500], updated_at=timezone.now())
        # A campaign cancelled while it is being rerouted: its unsent deliveries go too.
        from campaigns.reroute import reroute_campaign_cancelled

        reroute_campaign_cancelled(campaign_id=locked.pk)
    logger.info("campaign %s cancelled", locked.pk)
    return locked


def campaign_duplicate(*, campaign: Campaign) -> Campaign:
    """A new draft with the same content, accounts and fallback plan (and its own Message)."""
    with transaction.atomic():
        # A fresh copy of the row: the original campaign keeps its own Message object.
        message = Message.objects.get(pk=campaign.message_id) if campaign.message_id else None
        if message is not None:
            message.pk = None
            message.id = None
            message._state.adding = True
            message.name = f"{message.name} (copy)"[:200]
            message.save()
        copy = Campaign.objects.create(
            workspace_id=campaign.workspace_id,
            name=f"{campaign.name} (copy)"[:200],
            text=campaign.text,
            link=campaign.link,
            image_url=campaign.image_url,
            overrides=campaign.overrides,
            segment_id=campaign.segment_id,
            purpose=campaign.purpose,
            fallback_channels=list(campaign.fallback_channels or []),
            message=message,
            outage_policy=campaign.outage_policy,
            hold_then_reroute_minutes=campaign.hold_then_reroute_minutes,
            max_hold_minutes=campaign.max_hold_minutes,
            sms_budget_segments=campaign.sms_budget_segments,
            send_mode=campaign.send_mode,
            on_failback=campaign.on_failback,
        )
        copy.accounts.set(campaign.accounts.all())
    return copy
