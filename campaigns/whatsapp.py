"""Publishing a campaign to WhatsApp: one template message per consented contact.

WhatsApp is one-to-one, so "publishing" plans a Delivery on the whatsapp channel for each
contact of the audience who consented to WhatsApp for the campaign's purpose and has a phone, and
hands them to dispatch: the same UNIQUE key, atomic claim and consent re-check as every other
owned channel, and the reroute engine can later tell who was already reached.

The post is not published when its messages are merely queued. It stays ``publishing`` while
any of its messages has not been accepted by WhatsApp yet (planned, queued, or being sent), and
the publish task comes back every ``CAMPAIGNS_WHATSAPP_SETTLE_CHECK_S`` to look (one grouped
count). So a WhatsApp outage in the middle of a large send finds the post still at stake: the
reroute engine takes it over, cancels the messages WhatsApp has not accepted and plans the
contacts' fallback channels for them (``whatsapp_unaccepted_cancel``). Once none is waiting, the
post is published (some message left) or failed (none did).

Which WhatsApp messages count, for the reroute's "already reached on WhatsApp":
- reached: delivered or read (delivery statuses delivered, opened, clicked);
- still settling: sending, sent (accepted, not confirmed), unknown. No fallback yet: the message
  may still arrive, and a second message on another channel would be a duplicate;
- not reached: never accepted (planned, queued, cancelled) or came back undelivered, failed,
  bounced or suppressed: the contact gets the fallback.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from campaigns.models import PostStatus, SocialPost
from campaigns.reroute import campaign_audience
from contacts.models import Channel
from delivery.dispatch import deliveries_enqueue
from delivery.materialize import PlanSpec, SliceResult, deliveries_plan_slice
from delivery.models import Delivery
from delivery.quiet_hours import quiet_rules
from delivery.states import DeliveryStatus
from delivery.status import WHATSAPP_LEFT_STATUSES
from delivery.transitions import deliveries_transition
from delivery.variants import message_languages

S = DeliveryStatus
# Not accepted by WhatsApp yet. `sending` rows are claimed: a request may be on its way.
UNACCEPTED = (S.PLANNED, S.QUEUED, S.SENDING)
# What the reroute cancels: rows no request has been made for (claimed ones are left to finish).
CANCELLABLE = (S.PLANNED, S.QUEUED)
_CANCEL_BATCH = 5000


def campaign_whatsapp_send(*, post: SocialPost) -> int:
    """Plan and release the campaign's WhatsApp messages slice by slice; returns how many.

    Idempotent: a second run plans nothing twice (UNIQUE key) and releases only rows a run
    before it planned but never released."""
    campaign = post.campaign
    if campaign.message_id is None:
        raise ValueError(f"campaign {campaign.pk} has no message with a WhatsApp template")
    spec = PlanSpec(
        message_id=campaign.message_id,
        workspace_id=campaign.workspace_id,
        purpose=campaign.purpose,
        channels=(Channel.WHATSAPP,),
        quiet=quiet_rules(workspace=campaign.workspace),
    )
    audience = campaign_audience(campaign)
    after, total = 0, 0
    while True:
        result = deliveries_plan_slice(
            spec=spec, audience=audience, after_contact_id=after, limit=settings.REROUTE_SLICE_SIZE
        )
        if not result.contacts:
            return total
        ids = list(
            Delivery.objects.filter(
                message_id=campaign.message_id,
                channel=Channel.WHATSAPP,
                status=DeliveryStatus.PLANNED,
                contact_id__gt=after,
                contact_id__lte=result.last_contact_id,
            ).values_list("id", flat=True)
        )
        deliveries_enqueue(ids=ids)
        total += result.planned.get(Channel.WHATSAPP, 0)
        after = result.last_contact_id


def whatsapp_post_progress(*, message_id: int) -> dict[str, int]:
    """The post's WhatsApp messages by status (one grouped count on the message's index)."""
    rows = (
        Delivery.objects.filter(message_id=message_id, channel=Channel.WHATSAPP)
        .values("status")
        .annotate(n=Count("id"))
    )
    return {row["status"]: int(row["n"]) for row in rows}


def whatsapp_settle_check_at(*, post_id: int) -> float:
    """Mark the post's messages as released and waiting to settle; returns the wait in seconds
    before the next look. ``publishing_started_at`` moves too: the post is alive, not a
    publish whose worker died (the posts sweeper turns those into unknown)."""
    wait = float(settings.CAMPAIGNS_WHATSAPP_SETTLE_CHECK_S)
    now = timezone.now()
    SocialPost.objects.filter(pk=post_id, status=PostStatus.PUBLISHING).update(
        next_attempt_at=now + timedelta(seconds=wait), publishing_started_at=now, updated_at=now
    )
    return wait


def whatsapp_post_outcome(progress: dict[str, int]) -> str | None:
    """None while a message waits to be accepted; then published when any message left (it
    was accepted, or may have been), failed when none did."""
    if any(progress.get(status, 0) for status in UNACCEPTED):
        return None
    if not progress or any(progress.get(status, 0) for status in WHATSAPP_LEFT_STATUSES):
        return PostStatus.PUBLISHED
    return PostStatus.FAILED


def whatsapp_progress_text(progress: dict[str, int]) -> str:
    left = sum(progress.get(status, 0) for status in WHATSAPP_LEFT_STATUSES)
    total = sum(progress.values())
    return f"{left} of {total} template messages accepted by WhatsApp"


def whatsapp_unaccepted_cancel(*, message_id: int, after_contact_id: int = 0) -> int:
    """Cancel the message's WhatsApp rows no request was made for (planned, queued), for
    contacts after ``after_contact_id``: the reroute plans their fallback instead.

    Runs before each planning slice of a WhatsApp reroute, so the slice's "reached on WhatsApp"
    reads rows that can no longer leave: a row cancelled here gets its fallback, a row already
    claimed (sending) or accepted does not, and no contact gets both."""
    cancelled = 0
    while True:
        with transaction.atomic():
            ids = list(
                Delivery.objects.filter(
                    message_id=message_id,
                    channel=Channel.WHATSAPP,
                    status__in=CANCELLABLE,
                    contact_id__gt=after_contact_id,
                ).values_list("id", flat=True)[:_CANCEL_BATCH]
            )
            if not ids:
                return cancelled
            cancelled += len(
                deliveries_transition(
                    ids=ids,
                    target=S.CANCELLED,
                    detail="WhatsApp is down: rerouted to the campaign's fallback channels",
                    sources=CANCELLABLE,
                )
            )


def whatsapp_fallback_plan(*, message_id: int, contact_ids: list[int]) -> int:
    """Contacts whose WhatsApp message came back undelivered or failed get the campaign's
    fallback, while a WhatsApp reroute of that campaign is planning or sending; returns how
    many deliveries were planned.

    The reroute's slices skip contacts whose message was still settling (sent, not yet
    delivered); a failure reported after their slice was planned lands here. Planning is the
    reroute's own (same spec, set-based, ON CONFLICT DO NOTHING), so a contact the slice planned
    already gets nothing twice. Under an SMS budget, SMS is left out: the budget was shared out
    by the planning pass, which owns its counters."""
    from campaigns.language_counts import reroute_languages_add
    from campaigns.models import Campaign, Reroute, RerouteStatus
    from campaigns.reroute import campaign_plan_spec, sms_budget_rows

    campaign = (
        Campaign.objects.select_related("message", "workspace", "segment")
        .filter(message_id=message_id)
        .first()
    )
    if campaign is None or campaign.message is None or not contact_ids:
        return 0
    message = campaign.message
    with transaction.atomic():
        reroute = (
            Reroute.objects.select_for_update()
            .filter(
                campaign=campaign,
                network=Channel.WHATSAPP,
                status__in=[RerouteStatus.PLANNING, RerouteStatus.SENDING],
                window__state="open",
            )
            .first()
        )
        if reroute is None:
            return 0  # no outage on WhatsApp for this campaign: a failed message stays failed
        spec = campaign_plan_spec(campaign, network=Channel.WHATSAPP)
        if sms_budget_rows(campaign, spec) is not None:
            channels = tuple(ch for ch in spec.channels if ch != Channel.SMS)
            if not channels:
                return 0
            spec = dataclasses.replace(spec, channels=channels)
        audience = campaign_audience(campaign).filter(pk__in=contact_ids)
        deliveries_plan_slice(
            spec=spec, audience=audience, after_contact_id=0, limit=len(contact_ids)
        )
        # What this call wrote is what is still planned (not yet released) for these contacts:
        # rows an earlier slice or report planned were released already and stay uncounted.
        new_rows = list(
            Delivery.objects.filter(
                message_id=message_id, status=S.PLANNED, contact_id__in=contact_ids
            )
            .exclude(channel=Channel.WHATSAPP)
            .values_list("id", "channel", "contact__locale")
        )
        # Counted per content language too, by the rule the planning SQL labels rows with, so
        # the report's per-language figures add up to its per-channel ones.
        languages = message_languages(message=message)
        by_language: dict[str, dict[str, int]] = {}
        for _id, channel, locale in new_rows:
            reroute.planned[channel] = reroute.planned.get(channel, 0) + 1
            language = languages.language_for(locale=locale or "", channel=channel)
            counts = by_language.setdefault(channel, {})
            counts[language] = counts.get(language, 0) + 1
        reroute_languages_add(reroute=reroute, result=SliceResult(languages=by_language))
        reroute.save(update_fields=["planned", "planned_languages", "updated_at"])
        deliveries_enqueue(ids=[row_id for row_id, _channel, _locale in new_rows])
    return len(new_rows)
