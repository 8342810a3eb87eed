"""What a campaign says: its post on each network (with that network's overrides and in the
account's language) and what its fallback SMS costs in each content language."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from campaigns.models import Campaign, CampaignPostVariant, SocialAccount
from contacts.language import primary_language, workspace_language
from delivery.models import Message, MessageVariant
from delivery.publishers.base import SocialPostRequest
from delivery.sms_segments import sms_segments_count
from delivery.variants import PlanLanguages, languages_sms_texts, message_languages

# Fields a per-network override may replace.
OVERRIDABLE = ("text", "link", "image_url")
_MERGE_FIELD = re.compile(r"{{.*?}}|{%.*?%}")


def campaign_post_variant(*, campaign: Campaign, language: str) -> Campaign | CampaignPostVariant:
    """The post content in ``language``: its variant, else the workspace's default language's
    variant, else the campaign's own (base) text, link and image. A variant with no text counts
    as missing: a half-translated post falls back whole rather than mixing languages."""
    if campaign.pk is None:
        return campaign
    variants = {v.language: v for v in campaign.post_variants.all() if v.text}
    for candidate in (primary_language(language), workspace_language(campaign.workspace)):
        if candidate and candidate in variants:
            return variants[candidate]
    return campaign


def campaign_post_request(
    *,
    campaign: Campaign,
    network: str,
    account: SocialAccount | None = None,
    language: str = "",
) -> SocialPostRequest:
    """The post for ``network`` in the account's language (or ``language``): that variant's
    text, link and image, overridden per network. Overrides stay language-neutral (a shorter X
    text is written once, in the default language) and apply only to the base content."""
    wanted = language or (account.language if account is not None else "")
    source = campaign_post_variant(campaign=campaign, language=wanted)
    override: dict[str, Any] = {}
    if source is campaign and isinstance(campaign.overrides, dict):
        candidate = campaign.overrides.get(network)
        if isinstance(candidate, dict):
            override = candidate
    values = {field: str(getattr(source, field) or "") for field in OVERRIDABLE}
    if source is not campaign:
        # A variant that leaves the link or image empty shares the campaign's.
        for field in ("link", "image_url"):
            values[field] = values[field] or str(getattr(campaign, field) or "")
    for field in OVERRIDABLE:
        if isinstance(override.get(field), str):
            values[field] = override[field]
    return SocialPostRequest(
        text=values["text"], link=values["link"], image_url=values["image_url"]
    )


def sms_text_cost(text: str) -> int:
    """Segments one SMS of ``text`` costs before its merge fields are known (ten characters is
    a fair guess for a first name)."""
    if not text:
        return 1
    return max(sms_segments_count(text=_MERGE_FIELD.sub("x" * 10, text)).segments, 1)


def campaign_plan_languages(campaign: Campaign) -> tuple[PlanLanguages, int]:
    """The fallback message's content languages for planning, and the dearest SMS in segments.

    The SMS budget is turned into deliveries at the dearest language's cost, so a mixed
    audience can never overspend it (cheaper languages leave some budget unused)."""
    if campaign.message is None:
        raise ValueError(f"campaign {campaign.pk} has no fallback message")
    languages = message_languages(message=campaign.message)
    costs = {lang: sms_text_cost(text) for lang, text in languages_sms_texts(languages).items()}
    plan = PlanLanguages(default=languages.default, ready=languages.ready, sms_cost=costs)
    return plan, max(costs.values(), default=1)


MESSAGE_VARIANT_FIELDS = (
    "email_subject",
    "email_html",
    "email_text",
    "sms_text",
    "push_title",
    "push_body",
    "push_url",
    "push_icon",
    "whatsapp_language",
)
POST_VARIANT_FIELDS = ("text", "link", "image_url")


def campaign_message_ensure(campaign: Campaign) -> Message:
    """The campaign's fallback message, created (empty, in its workspace, for its purpose) the
    first time content is written for it: a marketer never makes one elsewhere to pick."""
    if campaign.message is not None:
        return campaign.message
    message = Message.objects.create(
        workspace_id=campaign.workspace_id, name=campaign.name[:200], purpose=campaign.purpose
    )
    campaign.message = message
    Campaign.objects.filter(pk=campaign.pk).update(message=message)
    return message


def campaign_variants_set(
    *,
    campaign: Campaign,
    message_variants: list[dict[str, Any]] | None = None,
    post_variants: list[dict[str, Any]] | None = None,
) -> None:
    """Replace the campaign's language variants with the given ones (already validated: one
    per language, known language tags). None leaves that kind as it is; [] removes them all."""
    with transaction.atomic():
        if message_variants is not None:
            message = campaign_message_ensure(campaign)
            wanted = {v["language"]: v for v in message_variants}
            MessageVariant.objects.filter(message_id=message.pk).exclude(
                language__in=list(wanted)
            ).delete()
            for language, values in wanted.items():
                MessageVariant.objects.update_or_create(
                    message_id=message.pk,
                    language=language,
                    defaults={
                        "workspace_id": message.workspace_id,
                        **{f: values.get(f, "") for f in MESSAGE_VARIANT_FIELDS},
                    },
                )
        if post_variants is not None:
            posts = {v["language"]: v for v in post_variants}
            CampaignPostVariant.objects.filter(campaign_id=campaign.pk).exclude(
                language__in=list(posts)
            ).delete()
            for language, values in posts.items():
                CampaignPostVariant.objects.update_or_create(
                    campaign_id=campaign.pk,
                    language=language,
                    defaults={
                        "workspace_id": campaign.workspace_id,
                        **{f: values.get(f, "") for f in POST_VARIANT_FIELDS},
                    },
                )
