"""Which language's content each contact gets: one rule, in Python for senders and previews and
in SQL for planning and counts.

Per channel, a contact gets the variant of their primary language (contacts.language) when the
message has one with content for that channel, else the variant of the workspace's default
language, else the message's base content. The base content counts as written in the
workspace's default language: that is the label it gets in every per-language count. Resolving
per channel lets a marketer translate the email first and the SMS later without anyone going
without a message meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contacts.language import primary_language, workspace_language
from contacts.models import Channel
from delivery.models import Message, MessageVariant

Source = Message | MessageVariant


@dataclass(frozen=True)
class MessageLanguages:
    """A message's variants, indexed for resolution, and the workspace's default language."""

    message: Message
    default: str
    variants: Mapping[str, MessageVariant] = field(default_factory=dict)
    # channel -> languages with a variant ready on that channel, sorted.
    ready: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def language_for(self, *, locale: str, channel: str) -> str:
        """The content language a contact with ``locale`` gets on ``channel``."""
        ready = self.ready.get(channel, ())
        primary = primary_language(locale)
        if primary and primary in ready:
            return primary
        return self.default

    def source(self, *, language: str, channel: str) -> Source:
        """Where ``language``'s content for ``channel`` is read from: its variant, else the
        default language's variant, else the base message."""
        ready = self.ready.get(channel, ())
        for candidate in (language, self.default):
            if candidate in ready:
                return self.variants[candidate]
        return self.message


def message_languages(
    *, message: Message, variants: list[MessageVariant] | None = None
) -> MessageLanguages:
    """The message's variants (one query unless given) and its workspace's default language."""
    if variants is None:
        variants = list(MessageVariant.objects.filter(message_id=message.pk).order_by("language"))
    ready: dict[str, list[str]] = {}
    for variant in variants:
        for channel in variant.channels_ready():
            if channel == Channel.WHATSAPP and not message.whatsapp_template:
                continue
            ready.setdefault(channel, []).append(variant.language)
    return MessageLanguages(
        message=message,
        default=workspace_language(message.workspace),
        variants={v.language: v for v in variants},
        ready={channel: tuple(sorted(langs)) for channel, langs in ready.items()},
    )


def locale_primary_sql(column: str) -> str:
    """SQL for primary_language(column): the lower-cased first subtag of a BCP 47 or POSIX tag.
    Looser than the Python (no alphabet check): it is only ever compared with known tags."""
    return f"LOWER(SPLIT_PART(REPLACE(COALESCE({column}, ''), '_', '-'), '-', 1))"


def language_case_sql(
    *, primary: str, channel: str, languages: MessageLanguages | PlanLanguages
) -> tuple[str, list[Any]]:
    """SQL for ``language_for`` on one channel, given an SQL expression of the primary subtag."""
    ready = list(languages.ready.get(channel, ()))
    if not ready:
        return "%s", [languages.default]
    return f"CASE WHEN {primary} = ANY(%s) THEN {primary} ELSE %s END", [ready, languages.default]


@dataclass(frozen=True)
class PlanLanguages:
    """What planning needs to label each delivery with its content language: the default, the
    ready languages per channel, and what one SMS costs in each language (segments)."""

    default: str
    ready: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sms_cost: Mapping[str, int] = field(default_factory=dict)


def plan_languages(*, languages: MessageLanguages, sms_cost: Mapping[str, int]) -> PlanLanguages:
    return PlanLanguages(default=languages.default, ready=languages.ready, sms_cost=sms_cost)


def languages_sms_texts(languages: MessageLanguages) -> dict[str, str]:
    """Each content language's SMS text (the base under the default language unless the
    default has a variant of its own)."""
    texts = {
        lang: languages.source(language=lang, channel=Channel.SMS).sms_text
        for lang in languages.ready.get(Channel.SMS, ())
    }
    default = languages.source(language=languages.default, channel=Channel.SMS)
    texts.setdefault(languages.default, default.sms_text)
    return texts
