"""Quiet hours: per channel, a daily window in the contact's own time zone when nothing is sent.

The window is a setting (REROUTE_QUIET_HOURS, "HH:MM-HH:MM" per channel, may wrap midnight;
seconds are accepted too) and a contact's zone is their `timezone`, or REROUTE_DEFAULT_TIMEZONE
when it is empty or unknown. A workspace may set its own SMS window and default zone
(Workspace.quiet_hours_sms, Workspace.timezone); `quiet_rules(workspace=...)` folds them over the
install's, and every function below takes those rules (None: the install's alone).

The same answers serve planning (a delivery planned inside the window gets `not_before` at its
end), the claim (a row whose contact is inside the window at claim time is left queued until its
end) and a paced send (a row whose contact's window begins before its request leaves is handed
back). Everything is worked out per time zone, never per row: a
chunk or slice holds a handful of zones, whatever its size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

if TYPE_CHECKING:
    from continuity.models import Workspace

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class QuietRules:
    """Whose quiet hours apply: (channel, "HH:MM-HH:MM") pairs and the zone of contacts without
    one of their own."""

    windows: tuple[tuple[str, str], ...]
    default_timezone: str

    def window_text(self, channel: str) -> str:
        return dict(self.windows).get(channel, "")


def quiet_rules(*, workspace: Workspace | None = None) -> QuietRules:
    """The install's quiet hours, with the workspace's own SMS window and default zone over them
    where it sets them (empty: the install's)."""
    windows = {ch: text for ch, text in settings.REROUTE_QUIET_HOURS.items() if text}
    default_tz = settings.REROUTE_DEFAULT_TIMEZONE
    if workspace is not None:
        if workspace.quiet_hours_sms.strip():
            windows["sms"] = workspace.quiet_hours_sms.strip()
        if workspace.timezone.strip():
            default_tz = workspace.timezone.strip()
    return QuietRules(windows=tuple(sorted(windows.items())), default_timezone=default_tz)


def _parse_window(text: str) -> QuietWindow:
    start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    return QuietWindow(start=start, end=end)


def quiet_window(*, channel: str, rules: QuietRules | None = None) -> QuietWindow | None:
    """The channel's configured window, or None when the channel has no quiet hours."""
    rules = rules or quiet_rules()
    window = rules.window_text(channel)
    if not window:
        return None
    try:
        return _parse_window(window)
    except ValueError:
        # A workspace's malformed window must not stop its sends or leave them unguarded: the
        # install's window for the channel applies instead.
        logger.warning("malformed quiet hours %r for %s: the install's apply", window, channel)
        fallback = settings.REROUTE_QUIET_HOURS.get(channel)
        return _parse_window(fallback) if fallback else None


def contact_zone(*, name: str, default: str = "") -> ZoneInfo:
    """The contact's zone; an empty or unknown name falls back to `default` (a workspace's), then
    to REROUTE_DEFAULT_TIMEZONE."""
    for candidate in (name, default):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo(settings.REROUTE_DEFAULT_TIMEZONE)


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def quiet_hours_ends(
    *, channel: str, tzs: Iterable[str], now: datetime, rules: QuietRules | None = None
) -> dict[str, datetime]:
    """For each zone name inside the channel's quiet hours at `now`: when its window ends (UTC).

    Keys are the names as given (empty and unknown names included), so SQL can match them
    against the contacts' raw `timezone` column.
    """
    rules = rules or quiet_rules()
    window = quiet_window(channel=channel, rules=rules)
    if window is None:
        return {}
    ends: dict[str, datetime] = {}
    for name in tzs:
        zone = contact_zone(name=name, default=rules.default_timezone)
        local = now.astimezone(zone)
        clock = local.time()
        if not window.contains(clock):
            continue
        end_day = local.date() if clock < window.end else local.date() + timedelta(days=1)
        ends[name] = _at(end_day, window.end, zone)
    return ends


def quiet_hours_starts(
    *, channel: str, tzs: Iterable[str], now: datetime, rules: QuietRules | None = None
) -> dict[str, datetime]:
    """For each zone name: when its next window begins (`now` for a zone already inside one).

    A send that has not started by then must wait for the window's end.
    """
    rules = rules or quiet_rules()
    window = quiet_window(channel=channel, rules=rules)
    if window is None or window.start == window.end:
        return {}
    starts: dict[str, datetime] = {}
    for name in tzs:
        zone = contact_zone(name=name, default=rules.default_timezone)
        local = now.astimezone(zone)
        if window.contains(local.time()):
            starts[name] = now
            continue
        day = local.date() if local.time() < window.start else local.date() + timedelta(days=1)
        starts[name] = _at(day, window.start, zone)
    return starts


def quiet_hours_end(
    *, channel: str, tz: str, at: datetime, rules: QuietRules | None = None
) -> datetime:
    """When the window that holds `at` ends for a contact in `tz` (`at` itself when none does)."""
    return quiet_hours_ends(channel=channel, tzs=[tz], now=at, rules=rules).get(tz, at)
