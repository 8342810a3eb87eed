"""The live dashboard's reads: what is at risk, what is held, what is rerouting, per workspace.

A network is "down" while an outage window is open on it, and "failing" when our own publish
attempts on it failed recently (transient or unknown outcomes, the ones self-detection counts)
without yet crossing the threshold that opens a window: the marketer sees trouble coming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.models import (
    Campaign,
    CampaignStatus,
    OutagePolicy,
    PostStatus,
    PublishAttempt,
    Reroute,
    RerouteStatus,
    SocialPost,
)
from campaigns.report_labels import channel_label, policy_label
from campaigns.reports import IN_FLIGHT, SENT, reroute_status_label
from continuity.models import Workspace
from delivery.models import Delivery
from delivery.publishers.health import COUNTED
from delivery.states import DeliveryStatus as S
from outages.models import OutageWindow, WindowState
from outages.networks import network_label

AT_RISK_HORIZON = timedelta(hours=24)


@dataclass
class NetworkTrouble:
    network: str
    label: str
    down: bool
    window_id: int | None = None
    since: datetime | None = None
    failures: int = 0
    attempts: int = 0

    @property
    def reason(self) -> str:
        if self.down:
            return gettext("down (outage open)")
        return gettext("failing: %(failures)s of the last %(attempts)s publish attempts failed") % {
            "failures": self.failures,
            "attempts": self.attempts,
        }


@dataclass
class AtRisk:
    campaign: Campaign
    networks: list[NetworkTrouble]
    policy: str


@dataclass
class RerouteRow:
    reroute: Reroute
    status: str
    done: bool
    progress: list[dict[str, Any]] = field(default_factory=list)
    held_until: str = ""
    reroutes_at: datetime | None = None


def networks_in_trouble(*, now: datetime | None = None) -> dict[str, NetworkTrouble]:
    """Networks down (an open window) or failing (recent failed publish attempts)."""
    now = now or timezone.now()
    trouble: dict[str, NetworkTrouble] = {}
    for window in OutageWindow.objects.filter(state=WindowState.OPEN).order_by("opened_at"):
        trouble.setdefault(
            window.network,
            NetworkTrouble(
                window.network,
                network_label(window.network),
                True,
                window_id=window.pk,
                since=window.opened_at,
            ),
        )
    since = now - timedelta(seconds=settings.SOCIAL_HEALTH_WINDOW_S)
    # Install-wide on purpose: a network failing for one workspace fails for all of them, and
    # only counts leave this query (no other workspace's names).
    for row in (
        PublishAttempt.objects.filter(at__gt=since, at__lte=now)
        .values("network")
        .annotate(n=Count("id"), failed=Count("id", filter=Q(kind__in=COUNTED)))
        .order_by("network")
    ):
        if row["network"] in trouble or not row["failed"] or row["failed"] * 2 < row["n"]:
            continue
        trouble[row["network"]] = NetworkTrouble(
            row["network"],
            network_label(row["network"]),
            False,
            failures=int(row["failed"]),
            attempts=int(row["n"]),
        )
    return trouble


def campaigns_at_risk(
    *, workspace: Workspace, trouble: dict[str, NetworkTrouble], now: datetime | None = None
) -> list[AtRisk]:
    """The workspace's campaigns due in the next 24 hours (or overdue and not yet taken) with a
    post still to publish on a network that is down or failing."""
    if not trouble:
        return []
    now = now or timezone.now()
    campaigns = (
        Campaign.objects.for_workspace(workspace)
        .filter(
            status=CampaignStatus.SCHEDULED,
            scheduled_at__lte=now + AT_RISK_HORIZON,
            posts__network__in=list(trouble),
            posts__status=PostStatus.PENDING,
        )
        .distinct()
        .order_by("scheduled_at", "pk")[:200]
    )
    campaigns = list(campaigns)
    networks: dict[int, set[str]] = {}
    for campaign_id, network in SocialPost.objects.filter(
        campaign_id__in=[c.pk for c in campaigns],
        network__in=list(trouble),
        status=PostStatus.PENDING,
    ).values_list("campaign_id", "network"):
        networks.setdefault(campaign_id, set()).add(network)
    return [
        AtRisk(
            c, [trouble[n] for n in sorted(networks.get(c.pk, ()))], policy_label(c.outage_policy)
        )
        for c in campaigns
    ]


def channel_progress_many(message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Sent / total per channel of each message, for progress bars, and how many rows wait:
    one grouped query for every message on the page.

    `waiting` is read from the rows (queued, not before a later time), so quiet hours applied at
    send time show up as well as those applied when the reroute was planned.
    """
    progress: dict[int, list[dict[str, Any]]] = {m: [] for m in message_ids}
    if not message_ids:
        return progress
    rows = (
        Delivery.objects.filter(message_id__in=message_ids)
        .values("message_id", "channel")
        .annotate(
            total=Count("id"),
            sent=Count("id", filter=Q(status__in=SENT)),
            in_flight=Count("id", filter=Q(status__in=IN_FLIGHT)),
            waiting=Count("id", filter=Q(status=S.QUEUED, not_before__gt=timezone.now())),
        )
        .order_by("message_id", "channel")
    )
    for row in rows:
        progress[row["message_id"]].append(
            {
                **row,
                "label": channel_label(row["channel"]),
                "percent": round(100 * row["sent"] / row["total"]) if row["total"] else 0,
            }
        )
    return progress


def channel_progress(message_id: int | None) -> list[dict[str, Any]]:
    """One message's progress per channel (channel_progress_many for one)."""
    if not message_id:
        return []
    return channel_progress_many([message_id])[message_id]


def reroute_rows(*, workspace: Workspace, window: OutageWindow) -> list[RerouteRow]:
    rows = []
    reroutes = list(
        Reroute.objects.for_workspace(workspace)
        .filter(window=window)
        .select_related("campaign")
        .order_by("campaign__scheduled_at", "pk")
    )
    progress_of = channel_progress_many(
        [r.campaign.message_id for r in reroutes if r.campaign.message_id]
    )
    for reroute in reroutes:
        progress = progress_of.get(reroute.campaign.message_id or 0, [])
        in_flight = sum(p["in_flight"] for p in progress)
        row = RerouteRow(
            reroute,
            reroute_status_label(reroute, in_flight=in_flight),
            reroute.status in (RerouteStatus.DONE, RerouteStatus.SKIPPED, RerouteStatus.CANCELLED)
            or (reroute.status == RerouteStatus.SENDING and in_flight == 0),
            progress,
        )
        if reroute.status == RerouteStatus.HOLDING:
            row.held_until = (
                gettext("the network is back, or %(minutes)s minutes pass")
                % {"minutes": reroute.campaign.hold_then_reroute_minutes}
                if reroute.policy == OutagePolicy.HOLD_THEN_REROUTE
                else gettext("the network is back")
            )
            row.reroutes_at = reroute.send_after
        rows.append(row)
    return rows
