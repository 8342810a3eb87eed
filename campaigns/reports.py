"""What an outage window did: the per-window report, its CSV and its sends-per-minute chart."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext

from campaigns.models import Reroute
from continuity.models import Workspace
from continuity.spreadsheet import spreadsheet_row_neutralise
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from outages.models import OutageWindow

SENT = (S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED, S.UNDELIVERED)
DELIVERED = (S.DELIVERED, S.OPENED, S.CLICKED)
FAILED = (S.FAILED, S.BOUNCED, S.UNDELIVERED)
# `waiting`: queued rows that may not leave before a later time (not_before in the future):
# quiet hours, whether applied when the rows were planned or when they came to be sent, and a
# provider's back-off. The reroute's `delayed_quiet_hours` counts only what planning delayed.
COLUMNS = (
    "planned",
    "sent",
    "delivered",
    "failed",
    "unknown",
    "cancelled",
    "suppressed",
    "waiting",
)


@dataclass
class WindowReport:
    window_id: int
    network: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    campaigns: list[dict[str, object]] = field(default_factory=list)
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    exclusions: dict[str, int] = field(default_factory=dict)
    sms_segments_spent: int = 0
    first_send_s: float | None = None
    last_send_s: float | None = None
    per_minute: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)


def window_report(*, window_id: int, workspace: Workspace) -> WindowReport:
    """What the window did to one workspace's campaigns: the window is install-wide, the
    reroutes, deliveries and counts in the report are only the workspace's."""
    window = OutageWindow.objects.get(pk=window_id)
    reroutes = list(
        Reroute.objects.for_workspace(workspace)
        .filter(window=window)
        .select_related("campaign")
        .order_by("campaign_id")
    )
    report = WindowReport(
        window.pk, window.network, window.state, window.opened_at, window.closed_at
    )
    message_ids = [r.campaign.message_id for r in reroutes if r.campaign.message_id]
    exclusions: Counter[str] = Counter()
    for reroute in reroutes:
        report.campaigns.append(
            {
                "campaign_id": reroute.campaign_id,
                "campaign": reroute.campaign.name,
                "policy": reroute.policy,
                "status": reroute.status,
                "planned": reroute.planned,
                "planned_languages": reroute.planned_languages,
            }
        )
        exclusions.update(
            {k: int(v) for k, v in reroute.exclusions.items() if not k.startswith("sms_")}
        )
    report.exclusions = dict(exclusions)
    deliveries = Delivery.objects.for_workspace(workspace).filter(message_id__in=message_ids)
    now = timezone.now()
    rows = deliveries.values("channel").annotate(
        planned=Count("id"),
        sent=Count("id", filter=Q(status__in=SENT)),
        delivered=Count("id", filter=Q(status__in=DELIVERED)),
        failed=Count("id", filter=Q(status__in=FAILED)),
        unknown=Count("id", filter=Q(status=S.UNKNOWN)),
        cancelled=Count("id", filter=Q(status=S.CANCELLED)),
        suppressed=Count("id", filter=Q(status=S.SUPPRESSED)),
        waiting=Count("id", filter=Q(status=S.QUEUED, not_before__gt=now)),
    )
    report.channels = {row["channel"]: {c: int(row[c]) for c in COLUMNS} for row in rows}
    report.sms_segments_spent = int(
        deliveries.filter(channel="sms", status__in=[*SENT, S.UNKNOWN]).aggregate(
            n=Sum("cost_units")
        )["n"]
        or 0
    )
    signal_at = min((r.signal_at for r in reroutes if r.signal_at), default=None)
    span = deliveries.filter(sent_at__isnull=False).aggregate(
        first=Min("sent_at"), last=Max("sent_at")
    )
    if signal_at and span["first"]:
        report.first_send_s = round((span["first"] - signal_at).total_seconds(), 3)
        report.last_send_s = round((span["last"] - signal_at).total_seconds(), 3)
    per_minute: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for row in (
        deliveries.filter(sent_at__isnull=False)
        .annotate(minute=TruncMinute("sent_at"))
        .values("channel", "minute")
        .annotate(n=Count("id"))
        .order_by("minute", "channel")
    ):
        per_minute[row["channel"]].append((row["minute"], int(row["n"])))
    report.per_minute = dict(per_minute)
    return report


@dataclass
class WorkspaceWindowCounts:
    """One workspace's share of a window, for operators: counts only, no names, no contacts."""

    workspace_id: int
    workspace: str
    reroutes: int = 0
    planned: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    sms_segments_spent: int = 0


def window_counts_by_workspace(*, window_id: int) -> list[WorkspaceWindowCounts]:
    """Every workspace the window rerouted, with counts: the install-wide view of operators."""
    window = OutageWindow.objects.get(pk=window_id)
    counts: dict[int, WorkspaceWindowCounts] = {}
    messages: dict[int, list[int]] = defaultdict(list)
    for workspace_id, slug, message_id in (
        Reroute.objects.filter(window=window)
        .values_list("workspace_id", "workspace__slug", "campaign__message_id")
        .order_by("workspace__slug")
    ):
        row = counts.setdefault(workspace_id, WorkspaceWindowCounts(workspace_id, slug))
        row.reroutes += 1
        if message_id:
            messages[workspace_id].append(message_id)
    for workspace_id, message_ids in messages.items():
        totals = (
            Delivery.objects.for_workspace(workspace_id)
            .filter(message_id__in=message_ids)
            .aggregate(
                planned=Count("id"),
                sent=Count("id", filter=Q(status__in=SENT)),
                failed=Count("id", filter=Q(status__in=FAILED)),
                unknown=Count("id", filter=Q(status=S.UNKNOWN)),
                sms=Sum("cost_units", filter=Q(channel="sms", status__in=[*SENT, S.UNKNOWN])),
            )
        )
        row = counts[workspace_id]
        row.planned = int(totals["planned"] or 0)
        row.sent = int(totals["sent"] or 0)
        row.failed = int(totals["failed"] or 0)
        row.unknown = int(totals["unknown"] or 0)
        row.sms_segments_spent = int(totals["sms"] or 0)
    return list(counts.values())


class _NeutralisingWriter:
    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow(spreadsheet_row_neutralise(row=list(row)))


def window_report_csv(report: WindowReport) -> str:
    out = io.StringIO()
    # Campaign names are marketer text: a name such as =HYPERLINK(...) must not run as a formula
    # in the spreadsheet the report is opened in.
    writer = _NeutralisingWriter(csv.writer(out))
    writer.writerow(["window", report.window_id, report.network, report.state])
    writer.writerow(["opened_at", report.opened_at.isoformat()])
    writer.writerow(["closed_at", report.closed_at.isoformat() if report.closed_at else ""])
    writer.writerow(["first_send_s", report.first_send_s, "last_send_s", report.last_send_s])
    writer.writerow(["sms_segments_spent", report.sms_segments_spent])
    writer.writerow([])
    writer.writerow(["channel", *COLUMNS])
    for channel, counts in sorted(report.channels.items()):
        writer.writerow([channel, *(counts[c] for c in COLUMNS)])
    writer.writerow([])
    writer.writerow(["exclusion", "contacts"])
    for reason, count in sorted(report.exclusions.items()):
        writer.writerow([reason, count])
    writer.writerow([])
    writer.writerow(["campaign_id", "campaign", "policy", "status"])
    for campaign in report.campaigns:
        writer.writerow(
            [campaign["campaign_id"], campaign["campaign"], campaign["policy"], campaign["status"]]
        )
    writer.writerow([])
    writer.writerow(["minute", "channel", "sent"])
    for channel, points in sorted(report.per_minute.items()):
        for minute, count in points:
            writer.writerow([minute.isoformat(), channel, count])
    return out.getvalue()


_COLOURS = {"email": "#2b6cb0", "sms": "#c05621", "push": "#2f855a", "whatsapp": "#6b46c1"}


def sends_per_minute_svg(report: WindowReport, *, width: int = 640, height: int = 200) -> str:
    """A small line chart rendered by the server: no script, nothing from a CDN."""
    minutes = sorted({m for points in report.per_minute.values() for m, _ in points})
    if not minutes:
        return '<p class="help">{}</p>'.format(escape(gettext("No sends yet.")))
    top = max((n for points in report.per_minute.values() for _, n in points), default=1)
    pad = 30
    step = (width - 2 * pad) / max(len(minutes) - 1, 1)
    index = {m: i for i, m in enumerate(minutes)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(gettext("sends per minute per channel"))}">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#999"/>',
        f'<text x="2" y="{pad}" font-size="10">{top}/min</text>',
    ]
    for n, (channel, points) in enumerate(sorted(report.per_minute.items())):
        colour = _COLOURS.get(channel, "#444")
        coords = " ".join(
            f"{pad + index[m] * step:.1f},{height - pad - (count / top) * (height - 2 * pad):.1f}"
            for m, count in points
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        parts.append(
            f'<text x="{pad + 80 * n}" y="{height - 8}" font-size="11" fill="{colour}">'
            f"{escape(channel)}</text>"
        )
    parts.append(
        f'<text x="{width - pad - 90}" y="{height - 8}" font-size="10">'
        f"{minutes[0]:%H:%M}-{minutes[-1]:%H:%M} UTC</text></svg>"
    )
    return "".join(parts)
