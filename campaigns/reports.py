"""What an outage window did: the per-window report, its downloads and its sends-over-time chart.

Only the window's own sends are counted: a campaign's deliveries are one set per message (UNIQUE
per message, contact and channel), so the rows a window's reroute planned are those of the
campaign's message created from that reroute on, up to the next reroute of the same campaign.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext

from campaigns.language_counts import reroutes_planned_languages
from campaigns.models import PostStatus, Reroute, RerouteStatus, SocialPost
from campaigns.report_labels import (
    BOOKKEEPING_PREFIX,
    COLUMN_LABELS,
    DELAYED_QUIET_HOURS,
    DELIVERY_STATUS_LABELS,
    LEFT_OUT_NOW_LABELS,
    channel_label,
    left_out_rows,
    money,
    policy_label,
    sms_segment_price,
)
from campaigns.reroute import FAILBACK_CANCEL_DETAIL, campaign_audience
from contacts.language_names import language_name
from contacts.models import Consent, ConsentState, Suppression
from continuity.models import Workspace
from continuity.spreadsheet import spreadsheet_row_neutralise
from delivery.models import Delivery, DeliveryEvent
from delivery.states import DeliveryStatus as S
from outages.models import OutageWindow

SENT = (S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED, S.UNDELIVERED)
DELIVERED = (S.DELIVERED, S.OPENED, S.CLICKED)
FAILED = (S.FAILED, S.BOUNCED, S.UNDELIVERED)
IN_FLIGHT = (S.PLANNED, S.QUEUED, S.SENDING)
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
class CampaignOutcome:
    """One campaign's part in the window, timed from the window's opening and its own due time."""

    campaign_id: int
    campaign: str
    # Codes for API clients; the labels are what people read.
    policy: str
    status: str
    due_at: datetime | None
    policy_label: str = ""
    status_label: str = ""
    planned: int = 0
    sent: int = 0
    cancelled: int = 0
    first_send_at: datetime | None = None
    last_send_at: datetime | None = None
    first_after_opening_s: float | None = None
    first_after_due_s: float | None = None
    last_after_opening_s: float | None = None


@dataclass
class LatePost:
    """A held post published once the network was back, and how late."""

    campaign_id: int
    campaign: str
    account: str
    due_at: datetime | None
    published_at: datetime | None
    late_s: float | None
    status: str


@dataclass
class WindowReport:
    window_id: int
    network: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    network_label: str = ""
    state_label: str = ""
    campaigns: list[CampaignOutcome] = field(default_factory=list)
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    exclusions: dict[str, int] = field(default_factory=dict)
    delayed_quiet_hours: int = 0
    sms_segments_spent: int = 0
    sms_cost: Decimal = Decimal(0)
    first_send_s: float | None = None
    last_send_s: float | None = None
    late_posts: list[LatePost] = field(default_factory=list)
    cancelled_sends: int = 0  # by fail-back (the campaign said to cancel)
    cancelled_other: int = 0  # a campaign cancelled by hand, WhatsApp replaced by fallbacks
    per_minute: dict[str, list[tuple[datetime, int]]] = field(default_factory=dict)
    # Messages planned per content language (campaigns.language_counts), in words.
    languages: list[tuple[str, int]] = field(default_factory=list)

    @property
    def left_out(self) -> list[tuple[str, int]]:
        return left_out_rows(self.exclusions)

    @property
    def sms_cost_text(self) -> str:
        return money(self.sms_cost)

    @property
    def channel_rows(self) -> list[tuple[str, list[int]]]:
        return [
            (channel_label(ch), [counts[c] for c in COLUMNS])
            for ch, counts in sorted(self.channels.items())
        ]

    @property
    def column_labels(self) -> list[str]:
        return [str(COLUMN_LABELS[c]) for c in COLUMNS]


def window_reroutes(*, window_id: int, workspace: Workspace) -> list[Reroute]:
    return list(
        Reroute.objects.for_workspace(workspace)
        .filter(window_id=window_id)
        .select_related("campaign")
        .order_by("campaign_id")
    )


def window_deliveries(*, reroutes: list[Reroute], workspace: Workspace) -> QuerySet[Delivery]:
    """The deliveries these reroutes planned: each campaign's rows from its reroute on, and
    before that campaign's next reroute (another window), so no window counts another's."""
    later: dict[int, datetime] = {}
    campaign_ids = [r.campaign_id for r in reroutes]
    for campaign_id, created_at in (
        Reroute.objects.for_workspace(workspace)
        .filter(campaign_id__in=campaign_ids)
        .values_list("campaign_id", "created_at")
    ):
        for r in reroutes:
            if r.campaign_id == campaign_id and created_at > r.created_at:
                later[r.pk] = min(later.get(r.pk, created_at), created_at)
    scope = Q(pk__in=[])
    for r in reroutes:
        if not r.campaign.message_id:
            continue
        part = Q(message_id=r.campaign.message_id, created_at__gte=r.created_at)
        if r.pk in later:
            part &= Q(created_at__lt=later[r.pk])
        scope |= part
    return Delivery.objects.for_workspace(workspace).filter(scope)


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 1)


def window_report(*, window_id: int, workspace: Workspace) -> WindowReport:
    """What the window did to one workspace's campaigns: the window is install-wide, the
    reroutes, deliveries and counts in the report are only the workspace's."""
    window = OutageWindow.objects.get(pk=window_id)
    reroutes = window_reroutes(window_id=window_id, workspace=workspace)
    report = WindowReport(
        window.pk,
        window.network,
        window.state,
        window.opened_at,
        window.closed_at,
        network_label=str(window.get_network_display()),
        state_label=str(window.get_state_display()),
    )
    exclusions: Counter[str] = Counter()
    for reroute in reroutes:
        exclusions.update(
            {
                k: int(v)
                for k, v in reroute.exclusions.items()
                if not k.startswith(BOOKKEEPING_PREFIX)
            }
        )
    report.delayed_quiet_hours = exclusions.pop(DELAYED_QUIET_HOURS, 0)
    report.exclusions = dict(exclusions)
    planned_per_language: Counter[str] = Counter()
    for by_language in reroutes_planned_languages(reroutes=reroutes).values():
        planned_per_language.update(by_language)
    report.languages = [
        (language_name(code), count) for code, count in sorted(planned_per_language.items())
    ]
    deliveries = window_deliveries(reroutes=reroutes, workspace=workspace)
    now = timezone.now()
    counts = dict(
        planned=Count("id"),
        sent=Count("id", filter=Q(status__in=SENT)),
        delivered=Count("id", filter=Q(status__in=DELIVERED)),
        failed=Count("id", filter=Q(status__in=FAILED)),
        unknown=Count("id", filter=Q(status=S.UNKNOWN)),
        cancelled=Count("id", filter=Q(status=S.CANCELLED)),
        suppressed=Count("id", filter=Q(status=S.SUPPRESSED)),
        waiting=Count("id", filter=Q(status=S.QUEUED, not_before__gt=now)),
    )
    # One pass over the window's deliveries, by message, channel and minute sent (none while
    # unsent): the per-channel table, the per-campaign rows, the SMS spend and the chart are
    # all sums of it (a few thousand groups at most, however many deliveries).
    rows = list(
        deliveries.annotate(minute=TruncMinute("sent_at"))
        .values("message_id", "channel", "minute")
        .annotate(
            **counts,
            segments=Sum("cost_units", filter=Q(channel="sms", status__in=[*SENT, S.UNKNOWN])),
            in_flight=Count("id", filter=Q(status__in=IN_FLIGHT)),
            sent_any=Count("id", filter=Q(sent_at__isnull=False)),
            first=Min("sent_at"),
            last=Max("sent_at"),
        )
        .order_by()
    )
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    per_message: dict[int, dict[str, Any]] = {}
    minutes: dict[str, Counter[datetime]] = defaultdict(Counter)
    for row in rows:
        channels[row["channel"]].update({c: int(row[c]) for c in COLUMNS})
        if row["minute"] is not None and row["sent_any"]:
            minutes[row["channel"]][row["minute"]] += int(row["sent_any"])
        report.sms_segments_spent += int(row["segments"] or 0)
        mine = per_message.setdefault(
            row["message_id"],
            {"planned": 0, "sent": 0, "cancelled": 0, "in_flight": 0, "first": None, "last": None},
        )
        for c in ("planned", "sent", "cancelled", "in_flight"):
            mine[c] += int(row[c])
        if row["first"] and (mine["first"] is None or row["first"] < mine["first"]):
            mine["first"] = row["first"]
        if row["last"] and (mine["last"] is None or row["last"] > mine["last"]):
            mine["last"] = row["last"]
    report.channels = {
        channel: {c: int(counted[c]) for c in COLUMNS}
        for channel, counted in sorted(channels.items())
    }
    cancelled = sum(c["cancelled"] for c in report.channels.values())
    # Fail-back's own cancellations, apart from a campaign cancelled by hand or WhatsApp messages
    # replaced by the fallback channels (their events say why).
    report.cancelled_sends = (
        DeliveryEvent.objects.filter(
            delivery__in=deliveries.filter(status=S.CANCELLED),
            status=S.CANCELLED,
            detail=FAILBACK_CANCEL_DETAIL,
        )
        .values("delivery_id")
        .distinct()
        .count()
        if cancelled
        else 0
    )
    report.cancelled_other = cancelled - report.cancelled_sends
    report.sms_cost = report.sms_segments_spent * sms_segment_price()
    for reroute in reroutes:
        campaign = reroute.campaign
        row = per_message.get(campaign.message_id or 0, {})
        outcome = CampaignOutcome(
            campaign.pk,
            campaign.name,
            reroute.policy,
            reroute.status,
            campaign.scheduled_at,
            policy_label=policy_label(reroute.policy),
            status_label=reroute_status_label(reroute, in_flight=int(row.get("in_flight", 0))),
            planned=int(row.get("planned", 0)),
            sent=int(row.get("sent", 0)),
            cancelled=int(row.get("cancelled", 0)),
            first_send_at=row.get("first"),
            last_send_at=row.get("last"),
        )
        outcome.first_after_opening_s = _seconds(outcome.first_send_at, window.opened_at)
        outcome.last_after_opening_s = _seconds(outcome.last_send_at, window.opened_at)
        outcome.first_after_due_s = _seconds(outcome.first_send_at, campaign.scheduled_at)
        report.campaigns.append(outcome)
    firsts = [c.first_send_at for c in report.campaigns if c.first_send_at]
    lasts = [c.last_send_at for c in report.campaigns if c.last_send_at]
    report.first_send_s = _seconds(min(firsts), window.opened_at) if firsts else None
    report.last_send_s = _seconds(max(lasts), window.opened_at) if lasts else None
    report.late_posts = _late_posts(reroutes)
    per_minute = {channel: sorted(counted.items()) for channel, counted in sorted(minutes.items())}
    report.per_minute = dict(per_minute)
    return report


def reroute_status_label(reroute: Reroute, *, in_flight: int | None) -> str:
    """The reroute's state in words. A reroute that has planned everything says "sending"
    until the window closes; once nothing of it is left to send it reads as done."""
    if reroute.status == RerouteStatus.SENDING and in_flight == 0:
        return gettext("Done: everything planned has left")
    return str(reroute.get_status_display())


def _late_posts(reroutes: list[Reroute]) -> list[LatePost]:
    held = [r for r in reroutes if r.policy in ("hold", "hold_then_reroute")]
    if not held:
        return []
    scope = Q(pk__in=[])
    for r in held:
        scope |= Q(campaign_id=r.campaign_id, network=r.network)
    posts = (
        SocialPost.objects.filter(scope, held_since__isnull=False)
        .select_related("campaign", "account")
        .order_by("campaign_id", "pk")
    )
    late = []
    for post in posts:
        due = post.campaign.scheduled_at
        late.append(
            LatePost(
                post.campaign_id,
                post.campaign.name,
                post.account.display_name,
                due,
                post.published_at,
                _seconds(post.published_at, due) if post.status == PostStatus.PUBLISHED else None,
                str(post.get_status_display()),
            )
        )
    return late


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
    counts: dict[int, WorkspaceWindowCounts] = {}
    by_workspace: dict[int, list[Reroute]] = defaultdict(list)
    for reroute in (
        Reroute.objects.filter(window_id=window_id)
        .select_related("campaign", "workspace")
        .order_by("workspace__slug", "campaign_id")
    ):
        row = counts.setdefault(
            reroute.workspace_id,
            WorkspaceWindowCounts(reroute.workspace_id, reroute.workspace.slug),
        )
        row.reroutes += 1
        by_workspace[reroute.workspace_id].append(reroute)
    for workspace_id, reroutes in by_workspace.items():
        totals = window_deliveries(reroutes=reroutes, workspace=reroutes[0].workspace).aggregate(
            planned=Count("id"),
            sent=Count("id", filter=Q(status__in=SENT)),
            failed=Count("id", filter=Q(status__in=FAILED)),
            unknown=Count("id", filter=Q(status=S.UNKNOWN)),
            sms=Sum("cost_units", filter=Q(channel="sms", status__in=[*SENT, S.UNKNOWN])),
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


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def window_report_csv(report: WindowReport) -> str:
    """The report's tables as one CSV, with headings in words."""
    out = io.StringIO()
    # Campaign names are marketer text: a name such as =HYPERLINK(...) must not run as a formula
    # in the spreadsheet the report is opened in.
    writer = _NeutralisingWriter(csv.writer(out))
    writer.writerow([gettext("Outage"), report.window_id, report.network_label, report.state_label])
    writer.writerow([gettext("Opened at"), _iso(report.opened_at)])
    writer.writerow([gettext("Closed at"), _iso(report.closed_at)])
    writer.writerow([gettext("First send, seconds after the outage opened"), report.first_send_s])
    writer.writerow([gettext("Last send, seconds after the outage opened"), report.last_send_s])
    writer.writerow([gettext("SMS segments spent"), report.sms_segments_spent])
    writer.writerow([gettext("SMS cost"), report.sms_cost_text])
    writer.writerow([])
    writer.writerow([gettext("Channel"), *report.column_labels])
    for label, values in report.channel_rows:
        writer.writerow([label, *values])
    writer.writerow([])
    writer.writerow([gettext("Left out: reason"), gettext("Contacts")])
    for reason, count in report.left_out:
        writer.writerow([reason, count])
    writer.writerow([gettext("Delayed by quiet hours (sent later)"), report.delayed_quiet_hours])
    writer.writerow([])
    writer.writerow(
        [
            gettext("Campaign id"),
            gettext("Campaign"),
            gettext("Outage policy"),
            gettext("Status"),
            gettext("Due at"),
            gettext("First send, seconds after the outage opened"),
            gettext("First send, seconds after the campaign was due"),
            gettext("Sent"),
            gettext("Cancelled"),
        ]
    )
    for c in report.campaigns:
        writer.writerow(
            [
                c.campaign_id,
                c.campaign,
                c.policy_label,
                c.status_label,
                _iso(c.due_at),
                c.first_after_opening_s,
                c.first_after_due_s,
                c.sent,
                c.cancelled,
            ]
        )
    writer.writerow([])
    writer.writerow([gettext("Minute (UTC)"), gettext("Channel"), gettext("Sent")])
    for channel, points in sorted(report.per_minute.items()):
        for minute, count in points:
            writer.writerow([minute.isoformat(), channel_label(channel), count])
    return out.getvalue()


CONTACT_CSV_BATCH = 2000


def window_contacts_csv(*, window_id: int, workspace: Workspace) -> Iterator[str]:
    """Per contact: who got what on which channel, then who was left out and why. Streamed in
    keyset batches, so memory stays flat however large the audience is.

    The engine counts left-out reasons without storing one per contact, so a left-out contact's
    reason is read from their consent and suppressions now (it may have changed since)."""
    out = io.StringIO()
    writer = _NeutralisingWriter(csv.writer(out))

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow(
        [
            gettext("Campaign id"),
            gettext("Campaign"),
            gettext("Contact id"),
            gettext("External id"),
            gettext("Email"),
            gettext("Phone"),
            gettext("Channel"),
            gettext("Outcome"),
            gettext("Sent at"),
            gettext("Delivered at"),
            gettext("Opened at"),
            gettext("Clicked at"),
            gettext("Error or reason"),
        ]
    )
    yield flush()
    reroutes = window_reroutes(window_id=window_id, workspace=workspace)
    names = {r.campaign.message_id: (r.campaign_id, r.campaign.name) for r in reroutes}
    deliveries = window_deliveries(reroutes=reroutes, workspace=workspace)
    after = 0
    while True:
        batch = list(
            deliveries.filter(pk__gt=after)
            .order_by("pk")
            .values_list(
                "pk",
                "message_id",
                "contact_id",
                "contact__external_id",
                "contact__email",
                "contact__phone",
                "channel",
                "status",
                "sent_at",
                "delivered_at",
                "opened_at",
                "clicked_at",
                "error_text",
            )[:CONTACT_CSV_BATCH]
        )
        if not batch:
            break
        for (
            pk,
            message_id,
            *contact,
            channel,
            status,
            sent,
            delivered,
            opened,
            clicked,
            err,
        ) in batch:
            campaign_id, name = names.get(message_id, ("", ""))
            writer.writerow(
                [
                    campaign_id,
                    name,
                    *(str(v) if v else "" for v in contact),
                    channel_label(channel),
                    str(DELIVERY_STATUS_LABELS.get(status, status)),
                    _iso(sent),
                    _iso(delivered),
                    _iso(opened),
                    _iso(clicked),
                    err,
                ]
            )
            after = pk
        yield flush()
    left_out = gettext("Left out")
    for reroute in reroutes:
        yield from _left_out_rows(reroute, writer, flush, left_out)


def _left_out_rows(reroute: Reroute, writer: _NeutralisingWriter, flush: Any, label: str) -> Any:
    campaign = reroute.campaign
    if not campaign.message_id or reroute.status in (
        RerouteStatus.HOLDING,
        RerouteStatus.SKIPPED,
    ):
        return
    channels = list(campaign.fallback_channels)
    audience = campaign_audience(campaign).annotate(
        got=Exists(Delivery.objects.filter(message_id=campaign.message_id, contact=OuterRef("pk"))),
        suppressed=Exists(
            Suppression.objects.filter(contact=OuterRef("pk"), active=True, channel__in=channels)
        ),
        consented=Exists(
            Consent.objects.filter(
                contact=OuterRef("pk"),
                channel__in=channels,
                purpose=campaign.purpose,
                state=ConsentState.GRANTED,
            )
        ),
    )
    after = 0
    while True:
        batch = list(
            audience.filter(pk__gt=after, got=False)
            .order_by("pk")
            .values_list("pk", "external_id", "email", "phone", "suppressed", "consented")[
                :CONTACT_CSV_BATCH
            ]
        )
        if not batch:
            return
        for pk, external_id, email, phone, suppressed, consented in batch:
            reason = "suppressed" if suppressed else "other" if consented else "no_consent"
            writer.writerow(
                [
                    campaign.pk,
                    campaign.name,
                    pk,
                    external_id or "",
                    email or "",
                    str(phone) if phone else "",
                    "",
                    label,
                    "",
                    "",
                    "",
                    "",
                    str(LEFT_OUT_NOW_LABELS[reason]),
                ]
            )
            after = pk
        yield flush()


_COLOURS = {"email": "#2b6cb0", "sms": "#c05621", "push": "#2f855a", "whatsapp": "#6b46c1"}
_TICK_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440)


def _chart_span(report: WindowReport) -> tuple[datetime, datetime] | None:
    minutes = [m for points in report.per_minute.values() for m, _ in points]
    if not minutes:
        return None
    start = min(*minutes, report.opened_at.replace(second=0, microsecond=0))
    end = max(minutes) + timedelta(minutes=1)
    if report.closed_at:
        end = max(end, report.closed_at)
    return start, max(end, start + timedelta(minutes=2))


def sends_per_minute_svg(report: WindowReport, *, width: int = 720, height: int = 220) -> str:
    """Sends per minute per channel on a real time axis (a quiet gap stays a gap at zero), with
    the outage's opening and closing marked. Rendered by the server: no script, no CDN, and no
    style attribute (the CSP forbids them; SVG presentation attributes are not styles)."""
    span = _chart_span(report)
    if span is None:
        return '<p class="help">{}</p>'.format(escape(gettext("No sends yet.")))
    start, end = span
    total_s = (end - start).total_seconds()
    top = max((n for points in report.per_minute.values() for _, n in points), default=1)
    left, right, top_pad, bottom = 50, 20, 20, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom

    def x(at: datetime) -> float:
        return left + (at - start).total_seconds() / total_s * plot_w

    def y(n: int) -> float:
        return top_pad + plot_h - (n / top) * plot_h

    label = escape(gettext("Messages sent per minute, per channel, in UTC"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="continuity-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{label}">',
        f"<title>{label}</title>",
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top_pad + 4}" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    minutes_total = total_s / 60
    step = next((s for s in _TICK_STEPS_MIN if minutes_total / s <= 8), 1440)
    tick = start.replace(second=0, microsecond=0)
    tick += timedelta(minutes=(-tick.minute) % step if step < 60 else 0)
    while tick <= end:
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top_pad + plot_h}" x2="{tx:.1f}" '
            f'y2="{top_pad + plot_h + 4}" stroke="#999"/>'
            f'<text x="{tx:.1f}" y="{top_pad + plot_h + 16}" font-size="10" '
            f'text-anchor="middle">{tick:%H:%M}</text>'
        )
        tick += timedelta(minutes=step)
    for at, text in (
        (report.opened_at, gettext("outage opened")),
        (report.closed_at, gettext("outage closed")),
    ):
        if at is None:
            continue
        mx = x(at)
        parts.append(
            f'<line x1="{mx:.1f}" y1="{top_pad}" x2="{mx:.1f}" y2="{top_pad + plot_h}" '
            f'stroke="#b21f2d" stroke-dasharray="4 3"/>'
            f'<text x="{mx + 3:.1f}" y="{top_pad + 10}" font-size="10" fill="#b21f2d">'
            f"{escape(text)}</text>"
        )
    for n, (channel, points) in enumerate(sorted(report.per_minute.items())):
        colour = _COLOURS.get(channel, "#444")
        counts = dict(points)
        # A minute without sends is a zero, so the line drops to the axis across a gap.
        series: dict[datetime, int] = {}
        for minute in counts:
            for neighbour in (minute - timedelta(minutes=1), minute + timedelta(minutes=1)):
                if start <= neighbour <= end:
                    series.setdefault(neighbour, 0)
        series.update(counts)
        coords = " ".join(
            f"{x(m + timedelta(seconds=30)):.1f},{y(c):.1f}" for m, c in sorted(series.items())
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        parts.append(
            f'<text x="{left + 110 * n}" y="{height - 6}" font-size="11" fill="{colour}">'
            f"{escape(channel_label(channel))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
