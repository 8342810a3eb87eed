"""Engagement per campaign and channel: delivered, opened, clicked, bounced, unsubscribed.

Opens, clicks and deliveries come from the provider events the status webhooks already apply to
each Delivery (delivered_at, opened_at, clicked_at and the status). An unsubscribe names no
message, so it is credited to the campaign when the contact withdrew consent on that channel,
through an unsubscribe link, STOP, a complaint or the preference centre, after the message was
sent to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q
from django.template.loader import render_to_string

from campaigns.models import Campaign
from campaigns.report_labels import channel_label
from contacts.models import ConsentAction, ConsentEvent, ConsentSource
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S

# Ways a person withdraws consent themselves (not a bounce, an import or an erasure).
UNSUBSCRIBE_SOURCES = (
    ConsentSource.UNSUBSCRIBE_LINK,
    ConsentSource.SMS_KEYWORD,
    ConsentSource.COMPLAINT,
    ConsentSource.PREFERENCE_CENTRE,
)
SENT = (S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED, S.UNDELIVERED)


@dataclass
class ChannelEngagement:
    channel: str
    label: str
    sent: int
    delivered: int
    opened: int
    clicked: int
    bounced: int
    unsubscribed: int

    def _rate(self, part: int) -> str:
        return f"{100 * part / self.delivered:.1f}%" if self.delivered else "-"

    @property
    def open_rate(self) -> str:
        return self._rate(self.opened)

    @property
    def click_rate(self) -> str:
        return self._rate(self.clicked)


def campaign_engagement(*, campaign: Campaign) -> list[ChannelEngagement]:
    """One row per owned channel the campaign's fallback message went out on."""
    if not campaign.message_id:
        return []
    unsubscribed = Exists(
        ConsentEvent.objects.filter(
            contact_id=OuterRef("contact_id"),
            channel=OuterRef("channel"),
            action=ConsentAction.REVOKE,
            source__in=UNSUBSCRIBE_SOURCES,
            occurred_at__gte=OuterRef("sent_at"),
        )
    )
    rows = (
        Delivery.objects.for_workspace(campaign.workspace_id)
        .filter(message_id=campaign.message_id)
        .annotate(unsubscribed=unsubscribed)
        .values("channel")
        .annotate(
            sent=Count("id", filter=Q(status__in=SENT)),
            delivered=Count(
                "id",
                filter=Q(delivered_at__isnull=False)
                | Q(status__in=(S.DELIVERED, S.OPENED, S.CLICKED)),
            ),
            opened=Count(
                "id", filter=Q(opened_at__isnull=False) | Q(status__in=(S.OPENED, S.CLICKED))
            ),
            clicked=Count("id", filter=Q(clicked_at__isnull=False) | Q(status=S.CLICKED)),
            bounced=Count("id", filter=Q(status__in=(S.BOUNCED, S.UNDELIVERED))),
            unsubscribed_n=Count("id", filter=Q(unsubscribed=True, sent_at__isnull=False)),
        )
        .order_by("channel")
    )
    return [
        ChannelEngagement(
            row["channel"],
            channel_label(row["channel"]),
            int(row["sent"]),
            int(row["delivered"]),
            int(row["opened"]),
            int(row["clicked"]),
            int(row["bounced"]),
            int(row["unsubscribed_n"]),
        )
        for row in rows
    ]


def campaign_engagement_panel(campaign: Campaign | None) -> str:
    """The engagement table for the campaign's change form (a read-only field's value). The
    template is autoescaped and its rendering comes back marked safe: the admin shows it as is."""
    if campaign is None or campaign.pk is None:
        return ""
    return render_to_string(
        "admin/campaigns/_engagement_table.html",
        {"engagement": campaign_engagement(campaign=campaign), "campaign": campaign},
    )
