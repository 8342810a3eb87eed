"""The outage drill: what would happen if a network went down now, without sending anything.

It runs the reroute engine's own planning statements (delivery.materialize, write=False) slice by
slice inside a transaction that is always rolled back, so the counts are those the real reroute
would produce for the same data, and nothing is created.

Replanning a million contacts takes minutes, so the admin page never runs it in its request: it
asks for a run (drill_run_request), a Celery task plans it (drill_run_execute) and keeps the report
in the cache, and the page shows "running" and refreshes itself until the report is there. An
estimate from the composer's aggregate was the other choice; it is still one scan of the whole
audience (seconds at that size) and ignores the SMS budget, quiet hours and the frequency cap, so
it would be neither fast nor what the drill promises: the counts the real reroute would make.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.models import Campaign, CampaignStatus, OutagePolicy, PostStatus
from campaigns.report_labels import (
    DELAYED_QUIET_HOURS,
    channel_label,
    left_out_rows,
    money,
    policy_label,
    sms_segment_price,
)
from campaigns.reroute import (
    campaign_audience,
    campaign_plan_spec,
    sms_allowance,
    sms_budget_rows,
)
from continuity.models import Workspace
from delivery.materialize import deliveries_plan_slice, sms_only_count
from outages.networks import network_label

logger = logging.getLogger(__name__)

# The drill's fallback channels, in the order its tables show them.
DRILL_CHANNELS = ("email", "sms", "push", "whatsapp")


@dataclass
class CampaignDrill:
    campaign_id: int
    campaign: str
    policy: str
    workspace: str = ""
    planned: dict[str, int] = field(default_factory=dict)
    exclusions: dict[str, int] = field(default_factory=dict)
    contacts: int = 0
    sms_segments: int = 0
    # A float, so the drill stays JSON as it is (API, --json); shown as money by sms_cost_text.
    sms_cost: float = 0.0
    problem: str = ""
    # What the policy does first, in words: send now, hold (then send), or skip.
    verdict: str = ""
    # Whether the counts would be sent now (reroute) or only if the hold runs out.
    sends_now: bool = True

    @property
    def policy_label(self) -> str:
        return policy_label(self.policy)

    @property
    def channel_counts(self) -> list[int]:
        return [self.planned.get(ch, 0) for ch in DRILL_CHANNELS]

    @property
    def left_out(self) -> int:
        return sum(n for _, n in left_out_rows(self.exclusions))

    @property
    def delayed(self) -> int:
        return int(self.exclusions.get(DELAYED_QUIET_HOURS, 0))

    @property
    def sms_cost_text(self) -> str:
        return money(self.sms_cost)


@dataclass
class DrillReport:
    network: str
    campaigns: list[CampaignDrill] = field(default_factory=list)

    @property
    def planned(self) -> dict[str, int]:
        """Messages that would leave now: reroute campaigns only (a hold sends nothing yet)."""
        total: Counter[str] = Counter()
        for drill in self.campaigns:
            if drill.sends_now:
                total.update(drill.planned)
        return dict(total)

    @property
    def planned_after_hold(self) -> dict[str, int]:
        """Messages held campaigns would send if the network is still down when the hold ends."""
        total: Counter[str] = Counter()
        for drill in self.campaigns:
            if not drill.sends_now:
                total.update(drill.planned)
        return dict(total)

    @property
    def exclusions(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for drill in self.campaigns:
            total.update(drill.exclusions)
        return dict(total)

    @property
    def sms_segments(self) -> int:
        return sum(d.sms_segments for d in self.campaigns if d.sends_now)

    @property
    def sms_cost(self) -> float:
        return round(sum(d.sms_cost for d in self.campaigns if d.sends_now), 4)

    @property
    def sms_cost_text(self) -> str:
        return money(self.sms_cost)

    @property
    def price_text(self) -> str:
        return money(sms_segment_price())

    @property
    def network_label(self) -> str:
        return network_label(self.network)

    @property
    def channel_headers(self) -> list[str]:
        return [channel_label(ch) for ch in DRILL_CHANNELS]

    @property
    def totals_now(self) -> list[int]:
        planned = self.planned
        return [planned.get(ch, 0) for ch in DRILL_CHANNELS]

    @property
    def totals_after_hold(self) -> list[int]:
        planned = self.planned_after_hold
        return [planned.get(ch, 0) for ch in DRILL_CHANNELS]

    @property
    def left_out(self) -> list[tuple[str, int]]:
        return left_out_rows(self.exclusions)

    @property
    def delayed(self) -> int:
        return int(self.exclusions.get(DELAYED_QUIET_HOURS, 0))


def drill_campaigns(*, network: str, workspace: Workspace | None) -> list[int]:
    """Scheduled campaigns with something still to publish on the network: the workspace's, or
    every workspace's for an install-wide drill (workspace None, operators)."""
    campaigns = (
        Campaign.objects.all() if workspace is None else Campaign.objects.for_workspace(workspace)
    )
    return list(
        campaigns.filter(
            status__in=[CampaignStatus.SCHEDULED, CampaignStatus.PUBLISHING],
            posts__network=network,
            posts__status__in=[PostStatus.PENDING, PostStatus.HELD],
        )
        .order_by("scheduled_at", "pk")
        .values_list("pk", flat=True)
        .distinct()
    )


def campaign_drill(*, campaign: Campaign, network: str) -> CampaignDrill:
    drill = CampaignDrill(
        campaign.pk, campaign.name, campaign.outage_policy, workspace=campaign.workspace.slug
    )
    drill.verdict, drill.sends_now = _verdict(campaign)
    if campaign.outage_policy == OutagePolicy.SKIP:
        drill.problem = gettext("Skipped: the post is not published and nothing is sent.")
        return drill
    if campaign.message is None or not campaign.fallback_channels:
        drill.problem = gettext("No fallback content or channels: nothing would be sent.")
        return drill
    spec = campaign_plan_spec(campaign, network=network)
    audience = campaign_audience(campaign)
    total_rows = sms_budget_rows(campaign, spec)
    reserved = (
        min(
            sms_only_count(spec=spec, audience=audience, limit=settings.REROUTE_SLICE_SIZE),
            total_rows,
        )
        if total_rows is not None
        else 0
    )
    used_only = used_alt = segments = 0
    planned: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    after = 0
    while True:
        allowance = sms_allowance(
            total_rows=total_rows, reserved=reserved, used_only=used_only, used_alt=used_alt
        )
        result = deliveries_plan_slice(
            spec=spec,
            audience=audience,
            after_contact_id=after,
            limit=settings.REROUTE_SLICE_SIZE,
            sms_allowance=allowance,
            write=False,
        )
        if not result.contacts:
            break
        drill.contacts += result.contacts
        planned.update(result.planned)
        excluded.update(result.exclusions)
        if result.delayed_quiet_hours:
            excluded[DELAYED_QUIET_HOURS] += result.delayed_quiet_hours
        used_only += result.sms_only_planned
        used_alt += result.sms_alt_planned
        # Each slice prices its SMS in its rows' content languages (a short Italian text can
        # cost one segment where the English one costs two), as the real reroute records them.
        segments += result.sms_segments
        after = result.last_contact_id
    drill.planned = dict(planned)
    drill.exclusions = dict(excluded)
    drill.sms_segments = segments
    drill.sms_cost = round(float(drill.sms_segments * sms_segment_price()), 4)
    return drill


def _verdict(campaign: Campaign) -> tuple[str, bool]:
    """What the campaign's policy does first, in words, and whether it sends right away."""
    policy = campaign.outage_policy
    if policy == OutagePolicy.REROUTE:
        return gettext("Would send these messages now instead of the post."), True
    if policy == OutagePolicy.HOLD_THEN_REROUTE:
        return (
            gettext(
                "Would hold the post for %(minutes)s minutes; if the network is still down then, "
                "would send these messages."
            )
            % {"minutes": campaign.hold_then_reroute_minutes},
            False,
        )
    if policy == OutagePolicy.HOLD:
        return (
            gettext(
                "Would hold the post until the network is back, for at most %(minutes)s minutes "
                "after it was due; only then would these messages be sent."
            )
            % {"minutes": campaign.max_hold_minutes},
            False,
        )
    return gettext("Would skip the post and send nothing."), False


def outage_drill(
    *, network: str, workspace: Workspace | None, campaign_ids: list[int] | None = None
) -> DrillReport:
    """Counts per channel, exclusions by reason, SMS segments and cost; creates nothing.

    A workspace's drill sees only its own campaigns (ids of another workspace's are ignored);
    workspace None drills every workspace's (operators), each under its own rules.
    """
    report = DrillReport(network=network)
    ids = (
        campaign_ids
        if campaign_ids is not None
        else drill_campaigns(network=network, workspace=workspace)
    )
    with transaction.atomic():
        campaigns = Campaign.objects.filter(pk__in=ids).select_related(
            "message", "segment", "workspace"
        )
        if workspace is not None:
            campaigns = campaigns.filter(workspace_id=workspace.pk)
        for campaign in campaigns.order_by("pk"):
            report.campaigns.append(campaign_drill(campaign=campaign, network=network))
        # The planning statements use a temporary table; rolling back leaves no trace at all.
        transaction.set_rollback(True)
    return report


# A finished report stays this long (the page's "run again" replans on demand); a run still marked
# running after this long is taken as lost (a worker killed mid-run) and may be asked again.
DRILL_RESULT_TTL_S = 15 * 60
DRILL_RUNNING_TTL_S = 30 * 60
DRILL_RUNNING, DRILL_DONE, DRILL_FAILED = "running", "done", "failed"


@dataclass
class DrillRun:
    """One asked-for drill: running, done (with its report) or failed."""

    state: str
    started_at: datetime
    finished_at: datetime | None = None
    report: DrillReport | None = None


def drill_key(*, workspace: Workspace, network: str, campaign_ids: list[int] | None) -> str:
    """The cache key of a drill: per workspace, network and chosen campaigns. The workspace's
    creation time rides along so a database rebuilt under the same ids (tests, a restored
    backup) never reads another one's report."""
    raw = json.dumps(
        [
            workspace.pk,
            workspace.created_at.isoformat(),
            network,
            sorted(campaign_ids) if campaign_ids else None,
        ]
    )
    return "drill:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def drill_run_request(
    *, workspace: Workspace, network: str, campaign_ids: list[int] | None, fresh: bool = False
) -> DrillRun:
    """The drill's current run; a new one is enqueued when there is none (or ``fresh`` asks to
    replan a finished one). A run already in progress is never started twice."""
    key = drill_key(workspace=workspace, network=network, campaign_ids=campaign_ids)
    run: DrillRun | None = cache.get(key)
    if run is not None and (run.state == DRILL_RUNNING or not fresh):
        return run
    run = DrillRun(state=DRILL_RUNNING, started_at=timezone.now())
    # add, not set: of two pages asking at once, one enqueues.
    if not cache.add(key, run, DRILL_RUNNING_TTL_S):
        if not fresh:
            return cache.get(key) or run
        cache.set(key, run, DRILL_RUNNING_TTL_S)
    from campaigns.tasks import drill_enqueue

    drill_enqueue(workspace_id=workspace.pk, network=network, campaign_ids=campaign_ids)
    return cache.get(key) or run


def drill_run_execute(*, workspace_id: int, network: str, campaign_ids: list[int] | None) -> str:
    """The worker's side: plan the drill and keep its report for the page."""
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return "no_workspace"
    key = drill_key(workspace=workspace, network=network, campaign_ids=campaign_ids)
    current: DrillRun | None = cache.get(key)
    started = current.started_at if current is not None else timezone.now()
    try:
        report = outage_drill(network=network, workspace=workspace, campaign_ids=campaign_ids)
    except Exception:
        # The page says it failed (and may be asked again) instead of spinning for half an hour.
        logger.exception("drill_failed", extra={"network": network, "workspace": workspace_id})
        cache.set(
            key,
            DrillRun(state=DRILL_FAILED, started_at=started, finished_at=timezone.now()),
            DRILL_RESULT_TTL_S,
        )
        raise
    cache.set(
        key,
        DrillRun(state=DRILL_DONE, started_at=started, finished_at=timezone.now(), report=report),
        DRILL_RESULT_TTL_S,
    )
    return DRILL_DONE
