"""The reroute engine: from a network going down to owned-channel deliveries, and back.

One Reroute row per (campaign, network, window), created with get_or_create against its UNIQUE
key, is the only gate: ten identical alerts, two monitors, or the dispatcher racing the webhook
all meet the same row, and only the caller that created it acts. Planning then walks the
campaign's audience in keyset slices (delivery.materialize), handing each slice's deliveries to
dispatch before planning the next, so the first provider request leaves long before a large
audience is fully planned. A redelivered planning task resumes from the row's cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.content import campaign_plan_languages
from campaigns.language_counts import reroute_languages_add
from campaigns.models import (
    Campaign,
    CampaignStatus,
    FailbackChoice,
    OutagePolicy,
    PostStatus,
    Reroute,
    RerouteStatus,
    SocialPost,
)
from campaigns.rollup import campaign_status_rollup
from contacts.models import Channel, Contact
from contacts.selectors import segment_contacts
from continuity.models import Workspace
from delivery.dispatch import deliveries_enqueue
from delivery.materialize import (
    PlanSpec,
    deliveries_plan_slice,
    planned_ids_between,
    sms_only_count,
)
from delivery.models import Delivery
from delivery.quiet_hours import quiet_rules
from delivery.states import DeliveryStatus
from delivery.transitions import deliveries_transition
from outages.models import OutageWindow

logger = logging.getLogger(__name__)

# Posts in these states still have something to lose when their network goes down.
AFFECTED_POST_STATUSES = (PostStatus.PENDING, PostStatus.PUBLISHING)
# Posts that went wrong shortly before a window opened are rerouted too (look-back).
RECENTLY_FAILED_POST_STATUSES = (PostStatus.FAILED, PostStatus.UNKNOWN, PostStatus.HELD)
LIVE_CAMPAIGN_STATUSES = (
    CampaignStatus.SCHEDULED,
    CampaignStatus.PUBLISHING,
    CampaignStatus.PARTIALLY_PUBLISHED,
    CampaignStatus.HELD,
    CampaignStatus.FAILED,
)


def campaign_audience(campaign: Campaign) -> QuerySet[Contact]:
    """The campaign's contacts: its segment's, or all of its workspace's, never another's."""
    if campaign.segment is None:
        audience = Contact.objects.filter(erased_at__isnull=True)
    else:
        audience = segment_contacts(campaign.segment)
    return audience.filter(workspace_id=campaign.workspace_id)


def workspace_frequency_cap(workspace: Workspace) -> int | None:
    """Fallback messages a contact may get per day in this workspace (None: no cap). The
    workspace's own cap, else the install's REROUTE_FREQUENCY_CAP_PER_DAY; 0 turns it off."""
    cap = workspace.frequency_cap_per_day
    if cap is None:
        cap = settings.REROUTE_FREQUENCY_CAP_PER_DAY
    return cap or None


def campaign_plan_spec(campaign: Campaign, *, network: str) -> PlanSpec:
    """How the campaign's fallback is planned, under its workspace's rules: frequency cap and
    quiet hours (contacts, and so their deliveries, belong to one workspace: the cap counts
    within it)."""
    if campaign.message is None:
        raise ValueError(f"campaign {campaign.pk} has no fallback message")
    # Each content language's SMS costs its own segments (campaigns/content.py).
    languages, sms_cost_units = campaign_plan_languages(campaign)
    workspace = campaign.workspace
    return PlanSpec(
        message_id=campaign.message.pk,
        workspace_id=campaign.workspace_id,
        purpose=campaign.purpose,
        channels=tuple(campaign.fallback_channels),
        mode=campaign.send_mode,
        frequency_cap=workspace_frequency_cap(workspace),
        skip_reached_on=Channel.WHATSAPP if network == Channel.WHATSAPP else "",
        sms_cost_units=sms_cost_units,
        quiet=quiet_rules(workspace=workspace),
        languages=languages,
    )


def _enqueue_task(name: str, **kwargs: object) -> None:
    from continuity.celery import app

    app.send_task(name, kwargs=kwargs)


def campaign_network_down(
    *, campaign_id: int, network: str, window_id: int, send: Callable[..., None] | None = None
) -> Reroute | None:
    """Apply the campaign's outage policy to its posts on `network`, once per window.

    Returns the Reroute created, or None when this (campaign, network, window) was already
    handled or the campaign has nothing on that network to lose.
    """
    enqueue = send or _enqueue_task
    now = timezone.now()
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("message", "workspace")
            .get(pk=campaign_id)
        )
        window = OutageWindow.objects.get(pk=window_id)
        posts = SocialPost.objects.filter(campaign=campaign, network=network).exclude(
            status__in=[PostStatus.PUBLISHED, PostStatus.SKIPPED, PostStatus.REROUTED]
        )
        if campaign.status == CampaignStatus.CANCELLED or not posts.exists():
            return None
        due = campaign.scheduled_at or now
        policy = campaign.outage_policy
        try:
            with transaction.atomic():
                reroute = Reroute.objects.create(
                    workspace_id=campaign.workspace_id,
                    campaign=campaign,
                    network=network,
                    window=window,
                    policy=policy,
                    signal_at=max(window.opened_at, due),
                )
        except IntegrityError:
            reroute = Reroute.objects.get(campaign=campaign, network=network, window=window)
            # Flap damping reopens the same window after a fail-back: the posts released by
            # that fail-back are still at stake, so the finished row answers again. Anything
            # else is a repeat of a signal already handled.
            if not (window.is_open and reroute.status == RerouteStatus.DONE):
                logger.info(
                    "campaign %s on %s already handled for window %s",
                    campaign_id,
                    network,
                    window_id,
                    extra={"campaign_id": campaign_id, "window_id": window_id},
                )
                return None
            reroute.policy = policy
            reroute.finished_at = None
        if policy == OutagePolicy.SKIP:
            posts.update(status=PostStatus.SKIPPED, last_error=f"{network} down: skipped")
            reroute.status = RerouteStatus.SKIPPED
            reroute.finished_at = now
        elif policy == OutagePolicy.REROUTE:
            posts.update(status=PostStatus.REROUTED, last_error=f"{network} down: rerouted")
            reroute.send_after = max(due, now)
            reroute.status = RerouteStatus.PLANNING
        else:
            posts.update(status=PostStatus.HELD, held_since=now, last_error=f"{network} down: held")
            reroute.status = RerouteStatus.HOLDING
            if policy == OutagePolicy.HOLD_THEN_REROUTE:
                # A short blip is waited out from the moment the outage is known.
                reroute.send_after = max(due, now) + timedelta(
                    minutes=campaign.hold_then_reroute_minutes
                )
            else:
                # The maximum hold counts from when the post should have gone out.
                reroute.send_after = max(due + timedelta(minutes=campaign.max_hold_minutes), now)
        reroute.save()
        campaign_status_refresh(campaign)
        if reroute.status == RerouteStatus.PLANNING:
            transaction.on_commit(lambda: enqueue("campaigns.reroute_plan", reroute_id=reroute.pk))
    logger.info(
        "campaign %s: %s down, policy %s",
        campaign_id,
        network,
        policy,
        extra={"campaign_id": campaign_id, "reroute_id": reroute.pk},
    )
    return reroute


def campaign_status_refresh(campaign: Campaign) -> None:
    """Roll the posts up into the campaign's status after a hold or a reroute: the one rule of
    campaigns.rollup, so a post still being checked counts as in flight here too."""
    campaign_status_rollup(campaign_id=campaign.pk)


def reroute_window_opened(*, window_id: int, send: Callable[..., None] | None = None) -> int:
    """Every campaign that the window's network going down affects now; returns how many."""
    window = OutageWindow.objects.get(pk=window_id)
    now = timezone.now()
    look_back = window.opened_at - timedelta(minutes=settings.REROUTE_LOOKBACK_MINUTES)
    due_now = Q(campaign__scheduled_at__lte=now, status__in=AFFECTED_POST_STATUSES)
    went_wrong = Q(status__in=RECENTLY_FAILED_POST_STATUSES, updated_at__gte=look_back)
    campaign_ids = (
        SocialPost.objects.filter(
            due_now | went_wrong,
            network=window.network,
            campaign__status__in=LIVE_CAMPAIGN_STATUSES,
        )
        .values_list("campaign_id", flat=True)
        .distinct()
    )
    touched = 0
    for campaign_id in campaign_ids:
        if campaign_network_down(
            campaign_id=campaign_id, network=window.network, window_id=window_id, send=send
        ):
            touched += 1
    if not touched:
        logger.info(
            "outage on %s (window %s) touches no campaign",
            window.network,
            window_id,
            extra={"window_id": window_id},
        )
    return touched


def campaign_sms_budget(campaign: Campaign) -> int | None:
    """The SMS segments a reroute of the campaign may spend: its own budget, else its
    workspace's (None: no limit)."""
    if campaign.sms_budget_segments is not None:
        return campaign.sms_budget_segments
    return campaign.workspace.sms_budget_segments


def sms_budget_rows(campaign: Campaign, spec: PlanSpec) -> int | None:
    """How many SMS deliveries the campaign's segment budget pays for (None: no budget)."""
    budget = campaign_sms_budget(campaign)
    if budget is None or Channel.SMS not in spec.channels:
        return None
    return budget // max(spec.sms_cost_units, 1)


def sms_allowance(
    *, total_rows: int | None, reserved: int, used_only: int, used_alt: int
) -> tuple[int, int] | None:
    """(rows left for SMS-only contacts, rows left for the others) given what slices used."""
    if total_rows is None:
        return None
    return max(reserved - used_only, 0), max(total_rows - reserved - used_alt, 0)


def _sms_allowance(
    reroute: Reroute, spec: PlanSpec, audience: QuerySet[Contact]
) -> tuple[int, int] | None:
    total_rows = sms_budget_rows(reroute.campaign, spec)
    if total_rows is None:
        return None
    if "sms_only_reserved" not in reroute.exclusions:
        # Contacts who have no other channel get the budget first: count them once, up front.
        only = sms_only_count(spec=spec, audience=audience, limit=settings.REROUTE_SLICE_SIZE)
        reroute.exclusions["sms_only_reserved"] = min(only, total_rows)
    return sms_allowance(
        total_rows=total_rows,
        reserved=int(reroute.exclusions["sms_only_reserved"]),
        used_only=int(reroute.exclusions.get("sms_only_used", 0)),
        used_alt=int(reroute.exclusions.get("sms_alt_used", 0)),
    )


def reroute_plan_next_slice(*, reroute_id: int, send: Callable[..., None] | None = None) -> bool:
    """Plan and release one slice; True when there is more to plan (the task runs again)."""
    with transaction.atomic():
        reroute = (
            Reroute.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related(
                "campaign", "campaign__message", "campaign__segment", "campaign__workspace"
            )
            .filter(pk=reroute_id, status=RerouteStatus.PLANNING)
            .first()
        )
        if reroute is None:
            return False  # done, cancelled, or another worker holds it right now
        campaign = reroute.campaign
        if campaign.status == CampaignStatus.CANCELLED:
            _reroute_stop(reroute, cancel_unsent=True)
            return False
        spec = campaign_plan_spec(campaign, network=reroute.network)
        audience = campaign_audience(campaign)
        allowance = _sms_allowance(reroute, spec, audience)
        after = reroute.planned_through_contact_id
        # A small first slice gets the first messages out within a second or two; later
        # slices are larger, since sending already runs behind them.
        limit = settings.REROUTE_FIRST_SLICE_SIZE if after == 0 else settings.REROUTE_SLICE_SIZE
        if reroute.network == Channel.WHATSAPP:
            # WhatsApp messages no request was made for give way to the fallback, before the
            # slice reads who was reached (campaigns/whatsapp.py).
            from campaigns.whatsapp import whatsapp_unaccepted_cancel

            whatsapp_unaccepted_cancel(message_id=spec.message_id, after_contact_id=after)
        result = deliveries_plan_slice(
            spec=spec,
            audience=audience,
            after_contact_id=after,
            limit=limit,
            sms_allowance=allowance,
        )
        if not result.contacts:
            reroute.status = RerouteStatus.SENDING
            reroute.save(update_fields=["status", "exclusions", "updated_at"])
            return False
        for channel, count in result.planned.items():
            reroute.planned[channel] = reroute.planned.get(channel, 0) + count
        for reason, count in result.exclusions.items():
            reroute.exclusions[reason] = reroute.exclusions.get(reason, 0) + count
        if result.delayed_quiet_hours:
            reroute.exclusions["delayed_quiet_hours"] = (
                reroute.exclusions.get("delayed_quiet_hours", 0) + result.delayed_quiet_hours
            )
        for key, used in (
            ("sms_only_used", result.sms_only_planned),
            ("sms_alt_used", result.sms_alt_planned),
        ):
            reroute.exclusions[key] = int(reroute.exclusions.get(key, 0)) + used
        reroute.sms_segments_planned += result.sms_segments
        reroute_languages_add(reroute=reroute, result=result)
        reroute.planned_through_contact_id = result.last_contact_id
        reroute.save()
        ids = planned_ids_between(
            message_id=spec.message_id,
            after_contact_id=after,
            through_contact_id=result.last_contact_id,
        )
        deliveries_enqueue(ids=ids)
    return True


# The event detail of a delivery fail-back cancelled (the campaign said to cancel what the
# network's return left unsent): the window report counts these apart from other cancellations.
FAILBACK_CANCEL_DETAIL = "fail-back: not sent before the network came back"


def _reroute_stop(reroute: Reroute, *, cancel_unsent: bool, for_failback: bool = False) -> int:
    cancelled: list[int] = []
    # A campaign's deliveries are one set whichever networks are down (UNIQUE per message,
    # contact and channel). When one network comes back while another's window still reroutes
    # the same campaign, those deliveries still carry that other share: they stay.
    shared = (
        for_failback
        and Reroute.objects.filter(
            campaign_id=reroute.campaign_id,
            status__in=[RerouteStatus.PLANNING, RerouteStatus.SENDING],
            window__state="open",
        )
        .exclude(pk=reroute.pk)
        .exists()
    )
    cancel_unsent = cancel_unsent and not shared
    if cancel_unsent and reroute.campaign.message_id:
        unsent = Delivery.objects.filter(
            message_id=reroute.campaign.message_id,
            status__in=[DeliveryStatus.PLANNED, DeliveryStatus.QUEUED],
        ).values_list("id", flat=True)
        cancelled = deliveries_transition(
            ids=list(unsent),
            target=DeliveryStatus.CANCELLED,
            detail=FAILBACK_CANCEL_DETAIL if for_failback else "reroute stopped",
        )
    reroute.status = RerouteStatus.CANCELLED if cancel_unsent else RerouteStatus.DONE
    reroute.finished_at = timezone.now()
    reroute.save(update_fields=["status", "finished_at", "updated_at"])
    return len(cancelled)


def reroute_campaign_cancelled(*, campaign_id: int) -> int:
    """A campaign cancelled mid-reroute: stop planning and cancel what has not been sent."""
    total = 0
    with transaction.atomic():
        for reroute in (
            Reroute.objects.select_for_update()
            .filter(
                campaign_id=campaign_id,
                status__in=[RerouteStatus.PLANNING, RerouteStatus.SENDING, RerouteStatus.HOLDING],
            )
            .select_related("campaign")
        ):
            total += _reroute_stop(reroute, cancel_unsent=True)
    return total


def reroute_holds_check(
    *, now: datetime | None = None, send: Callable[..., None] | None = None
) -> int:
    """Holds whose wait ran out while the network is still down become reroutes."""
    enqueue = send or _enqueue_task
    now = now or timezone.now()
    started = 0
    expired = Reroute.objects.filter(
        status=RerouteStatus.HOLDING, send_after__lte=now, window__state="open"
    ).values_list("id", flat=True)
    for reroute_id in expired:
        with transaction.atomic():
            moved = Reroute.objects.filter(pk=reroute_id, status=RerouteStatus.HOLDING).update(
                status=RerouteStatus.PLANNING, updated_at=now
            )
            if not moved:
                continue
            reroute = Reroute.objects.select_related("campaign").get(pk=reroute_id)
            SocialPost.objects.filter(
                campaign=reroute.campaign, network=reroute.network, status=PostStatus.HELD
            ).update(status=PostStatus.REROUTED, last_error="hold expired: rerouted")
            campaign_status_refresh(reroute.campaign)
            transaction.on_commit(
                lambda rid=reroute_id: enqueue("campaigns.reroute_plan", reroute_id=rid)  # type: ignore[misc]
            )
            started += 1
    return started


def reroute_stalled_resume(
    *, now: datetime | None = None, send: Callable[..., None] | None = None
) -> int:
    """Planning that stopped moving (its worker was killed mid-slice) starts again.

    The planning message of a killed worker waits in Redis until its visibility timeout (an
    hour); PostgreSQL knows better. Each planning step saves the row, so a row untouched for
    REROUTE_STALLED_AFTER_S lost its task. A second task for a live one is harmless: the slice
    step locks the row with SKIP LOCKED and the cursor and ON CONFLICT make it resume exactly.
    """
    enqueue = send or _enqueue_task
    now = now or timezone.now()
    stalled = list(
        Reroute.objects.filter(
            status=RerouteStatus.PLANNING,
            updated_at__lt=now - timedelta(seconds=settings.REROUTE_STALLED_AFTER_S),
        ).values_list("id", flat=True)
    )
    for reroute_id in stalled:
        logger.warning(
            "reroute %s stopped planning: resuming from its cursor",
            reroute_id,
            extra={"reroute_id": reroute_id},
        )
        enqueue("campaigns.reroute_plan", reroute_id=reroute_id)
    return len(stalled)


def reroute_window_closed(*, window_id: int) -> dict[str, int]:
    """Fail back: held posts publish late, and unsent deliveries follow each campaign's choice."""
    released = cancelled = 0
    now = timezone.now()
    for reroute in Reroute.objects.filter(window_id=window_id).select_related("campaign"):
        with transaction.atomic():
            campaign = reroute.campaign
            if reroute.status == RerouteStatus.HOLDING:
                held = SocialPost.objects.filter(
                    campaign=campaign, network=reroute.network, status=PostStatus.HELD
                )
                released += held.update(status=PostStatus.PENDING, updated_at=now)
                # Back to scheduled with its original due time: the dispatcher claims it as late
                # and publishes the held posts, recording how late they went out.
                Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.HELD).update(
                    status=CampaignStatus.SCHEDULED, updated_at=now
                )
                reroute.status = RerouteStatus.DONE
                reroute.finished_at = now
                reroute.save(update_fields=["status", "finished_at", "updated_at"])
            elif reroute.status in (RerouteStatus.PLANNING, RerouteStatus.SENDING):
                if campaign.on_failback == FailbackChoice.CANCEL:
                    cancelled += _reroute_stop(reroute, cancel_unsent=True, for_failback=True)
                elif reroute.status == RerouteStatus.SENDING:
                    reroute.status = RerouteStatus.DONE
                    reroute.finished_at = now
                    reroute.save(update_fields=["status", "finished_at", "updated_at"])
    return {"released_posts": released, "cancelled_deliveries": cancelled}
