"""Counting a campaign's fallback per content language: what planning recorded on the reroute,
and what became of the deliveries since (for the report, the drill and the API).

Planning labels each row with the language its contact gets (delivery/variants.py, in the
planning SQL) and the reroute keeps the sums in ``planned_languages``. The delivery counts are
worked out again from the contacts' locales, in one grouped query: a contact who changed
language after planning is counted under the language they were (or will be) sent.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from campaigns.models import Campaign, Reroute
from contacts.models import Channel
from continuity.models import Workspace
from delivery.materialize import SliceResult, deliveries_language_counts
from delivery.variants import message_languages

LanguageCounts = dict[str, dict[str, int]]


def reroute_languages_add(*, reroute: Reroute, result: SliceResult) -> None:
    """Add one planned slice's per-language counts to the reroute (saved by the caller)."""
    totals: dict[str, Any] = (
        reroute.planned_languages if isinstance(reroute.planned_languages, dict) else {}
    )
    for channel, by_language in result.languages.items():
        current = totals.setdefault(channel, {})
        for language, count in by_language.items():
            current[language] = int(current.get(language, 0)) + count
    reroute.planned_languages = totals


def reroutes_planned_languages(*, reroutes: list[Reroute]) -> LanguageCounts:
    """{channel: {language: planned}} summed over reroutes (a window's, for its report)."""
    totals: dict[str, dict[str, int]] = defaultdict(dict)
    for reroute in reroutes:
        for channel, by_language in (reroute.planned_languages or {}).items():
            for language, count in by_language.items():
                totals[channel][language] = totals[channel].get(language, 0) + int(count)
    return {channel: dict(counts) for channel, counts in totals.items()}


def campaign_language_counts(
    *, workspace: Workspace, campaign: Campaign
) -> dict[str, dict[str, dict[str, int]]]:
    """{channel: {language: {status: deliveries}}} over the campaign's fallback message, read
    inside ``workspace`` (another workspace's campaign counts nothing)."""
    if campaign.message is None or campaign.workspace_id != workspace.pk:
        return {}
    languages = message_languages(message=campaign.message)
    return deliveries_language_counts(
        message_id=campaign.message.pk,
        workspace_id=workspace.pk,
        channels=list(Channel.values),
        languages=languages,
    )
