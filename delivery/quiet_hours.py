"""Quiet hours: per channel, a daily window in the contact's own time zone when nothing is sent.

The window is a setting (REROUTE_QUIET_HOURS, "HH:MM-HH:MM" per channel, may wrap midnight;
seconds are accepted too) and a contact's zone is their `timezone`, or REROUTE_DEFAULT_TIMEZONE
when it is empty or unknown. The same answers serve planning (a delivery planned inside the
window gets `not_before` at its end), the claim (a row whose contact is inside the window at claim
time is left queued until its end) and a paced send (a row whose contact's window begins before
its request leaves is handed back). Everything is worked out per time zone, never per row: a
chunk or slice holds a handful of zones, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

# The error code a deferred row carries while it waits for its contact's window to end: the
# sweeper re-enqueues such rows as soon as they are due (no task message waits for them).
QUIET_HOURS_CODE = "quiet_hours"


@dataclass(frozen=True)
class QuietWindow:
    start: time
    end: time

    def contains(self, clock: time) -> bool:
        if self.start > self.end:  # wraps midnight: 21:00-08:00
            return self.start <= clock or clock < self.end
        return self.start <= clock < self.end


def quiet_window(*, channel: str) -> QuietWindow | None:
    """The channel's configured window, or None when the channel has no quiet hours."""
    window = settings.REROUTE_QUIET_HOURS.get(channel)
    if not window:
        return None
    start, end = (time.fromisoformat(part.strip()) for part in window.split("-"))
    return QuietWindow(start=start, end=end)


def contact_zone(*, name: str) -> ZoneInfo:
    """The contact's zone; an empty or unknown name falls back to REROUTE_DEFAULT_TIMEZONE."""
    try:
        return ZoneInfo(name or settings.REROUTE_DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.REROUTE_DEFAULT_TIMEZONE)


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def quiet_hours_ends(*, channel: str, tzs: Iterable[str], now: datetime) -> dict[str, datetime]:
    """For each zone name inside the channel's quiet hours at `now`: when its window ends (UTC).

    Keys are the names as given (empty and unknown names included), so SQL can match them
    against the contacts' raw `timezone` column.
    """
    window = quiet_window(channel=channel)
    if window is None:
        return {}
    ends: dict[str, datetime] = {}
    for name in tzs:
        zone = contact_zone(name=name)
        local = now.astimezone(zone)
        clock = local.time()
        if not window.contains(clock):
            continue
        end_day = local.date() if clock < window.end else local.date() + timedelta(days=1)
        ends[name] = _at(end_day, window.end, zone)
    return ends


def quiet_hours_starts(*, channel: str, tzs: Iterable[str], now: datetime) -> dict[str, datetime]:
    """For each zone name: when its next window begins (`now` for a zone already inside one).

    A send that has not started by then must wait for the window's end.
    """
    window = quiet_window(channel=channel)
    if window is None or window.start == window.end:
        return {}
    starts: dict[str, datetime] = {}
    for name in tzs:
        zone = contact_zone(name=name)
        local = now.astimezone(zone)
        if window.contains(local.time()):
            starts[name] = now
            continue
        day = local.date() if local.time() < window.start else local.date() + timedelta(days=1)
        starts[name] = _at(day, window.start, zone)
    return starts


def quiet_hours_end(*, channel: str, tz: str, at: datetime) -> datetime:
    """When the window that holds `at` ends for a contact in `tz` (`at` itself when none does)."""
    return quiet_hours_ends(channel=channel, tzs=[tz], now=at).get(tz, at)
