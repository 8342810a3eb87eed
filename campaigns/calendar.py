"""The campaign calendar: a week or a month of the workspace's campaigns by due day, with the
outage windows that overlap each day drawn over it. Server-rendered: two queries, no script."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign
from continuity.models import Workspace
from outages.models import OutageWindow

MODES = ("month", "week")
# A month view shows whole weeks: up to six rows of seven days.
MAX_DAYS = 42


@dataclass
class CalendarDay:
    day: date
    in_period: bool
    today: bool
    campaigns: list[Campaign] = field(default_factory=list)
    outages: list[OutageWindow] = field(default_factory=list)


@dataclass
class CalendarView:
    mode: str
    start: date
    end: date  # exclusive
    anchor: date
    previous: date
    following: date
    weeks: list[list[CalendarDay]]


def _parse_day(raw: str, today: date) -> date:
    try:
        return date.fromisoformat(raw[:10]) if raw else today
    except ValueError:
        return today


def _bounds(mode: str, anchor: date) -> tuple[date, date, date, date]:
    """First and last (exclusive) day shown, and the anchors of the previous and next page."""
    if mode == "week":
        start = anchor - timedelta(days=anchor.weekday())
        return start, start + timedelta(days=7), anchor - timedelta(days=7), anchor + timedelta(7)
    first = anchor.replace(day=1)
    start = first - timedelta(days=first.weekday())
    following = (first + timedelta(days=32)).replace(day=1)
    end = following + timedelta(days=(7 - following.weekday()) % 7)
    previous = (first - timedelta(days=1)).replace(day=1)
    return start, min(end, start + timedelta(days=MAX_DAYS)), previous, following


def campaign_calendar(
    *, workspace: Workspace, mode: str = "month", around: str = ""
) -> CalendarView:
    """The calendar page's days for ``mode`` ("month" or "week") around the ISO date ``around``
    (today when empty or unreadable), in the current time zone."""
    mode = mode if mode in MODES else "month"
    zone = timezone.get_current_timezone()
    today = timezone.localdate()
    anchor = _parse_day(around, today)
    start, end, previous, following = _bounds(mode, anchor)
    since = datetime.combine(start, time.min, tzinfo=zone)
    until = datetime.combine(end, time.min, tzinfo=zone)
    days = {
        start + timedelta(days=i): CalendarDay(
            day=start + timedelta(days=i),
            in_period=mode == "week" or (start + timedelta(days=i)).month == anchor.month,
            today=start + timedelta(days=i) == today,
        )
        for i in range((end - start).days)
    }
    campaigns = (
        Campaign.objects.for_workspace(workspace)
        .filter(scheduled_at__gte=since, scheduled_at__lt=until)
        .order_by("scheduled_at", "pk")
        .only("pk", "name", "status", "scheduled_at", "outage_policy")
    )
    for campaign in campaigns:
        if campaign.scheduled_at is None:  # excluded by the filter; typed as optional
            continue
        day = timezone.localtime(campaign.scheduled_at, zone).date()
        if day in days:
            days[day].campaigns.append(campaign)
    # Outages are install-wide: every workspace sees the networks that were down.
    windows = OutageWindow.objects.filter(
        Q(closed_at__isnull=True) | Q(closed_at__gte=since), opened_at__lt=until
    ).order_by("opened_at", "pk")
    now = timezone.now()
    for window in windows:
        first = timezone.localtime(window.opened_at, zone).date()
        last = timezone.localtime(window.closed_at or now, zone).date()
        current = max(first, start)
        while current <= last and current < end:
            days[current].outages.append(window)
            current += timedelta(days=1)
    ordered = [days[d] for d in sorted(days)]
    weeks = [ordered[i : i + 7] for i in range(0, len(ordered), 7)]
    return CalendarView(
        mode=mode,
        start=start,
        end=end,
        anchor=anchor,
        previous=previous,
        following=following,
        weeks=weeks,
    )
