"""What a campaign will look like: the post per network and the fallback message per channel,
rendered with a sample contact's merge fields (for the admin editor), in any content language;
and a test send of one language's content to one consenting contact.

Contact fields are whatever an import or the API let in (a name can be ``<script>``), so nothing
here returns markup to be trusted: texts are plain ``str`` for the page to escape, and the email's
HTML part is rendered with its merge fields escaped (as it is sent) and then sanitised with nh3."""

from __future__ import annotations

from dataclasses import dataclass, field

import nh3
from django.utils.translation import gettext as _

from campaigns.content import campaign_post_request
from campaigns.models import Campaign, SocialNetwork
from contacts.language import workspace_language
from contacts.models import Channel, Contact
from contacts.selectors import segment_contacts
from delivery.publishers import publisher_for
from delivery.publishers.instagram import InstagramPublisher
from delivery.publishers.x import XPublisher, x_weighted_length
from delivery.sms_segments import sms_segments_count
from delivery.templating import (
    MarketerTemplateError,
    marketer_template_compile,
    marketer_template_render,
)
from delivery.variants import message_languages

SAMPLE_FIELDS = {"first_name": "Alex", "last_name": "Example", "email": "alex@example.com"}


@dataclass(frozen=True)
class PostPreview:
    network: str
    text: str
    image_url: str
    length: str
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChannelPreview:
    channel: str
    title: str
    body: str
    note: str = ""
    # The email's HTML part, sanitised: for a sandboxed frame, still to be escaped into srcdoc.
    html: str = ""


def _sample_fields(campaign: Campaign, contact: Contact | None) -> tuple[dict[str, str], str]:
    if contact is not None:
        # The contact the marketer picked (the caller found it in the campaign's workspace).
        fields = {key: str(value) for key, value in contact.merge_fields().items()}
        name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
        return fields, name or _("contact #%(id)s") % {"id": contact.pk}
    if campaign.segment_id is not None and campaign.segment is not None:
        contact = segment_contacts(campaign.segment).order_by("pk").first()
    if contact is None:
        return dict(SAMPLE_FIELDS), _("a sample contact (the segment has no one yet)")
    fields = {key: str(value) for key, value in contact.merge_fields().items()}
    return fields, _("contact #%(id)s of the segment") % {"id": contact.pk}


def _render(template: str, fields: dict[str, str], *, autoescape: bool) -> str:
    # Autoescape off only for the plain-text parts, whose "&" must stay "&": their result is a
    # plain str (never marked safe) that the admin page escapes (tests/campaigns/test_admin.py
    # renders a contact named <script> inert). The engine is the one sends use, so a template
    # saved before its rules shows here the reason its deliveries would fail.
    try:
        compiled = marketer_template_compile(template)
        return marketer_template_render(compiled, fields, autoescape=autoescape)
    except MarketerTemplateError as exc:
        return _("[template error: %(error)s]") % {"error": exc}


def _render_text(template: str, fields: dict[str, str]) -> str:
    """A plain-text part (subject, text body, SMS, push): not HTML, so "&" stays "&"."""
    return _render(template, fields, autoescape=False)


def _render_html(template: str, fields: dict[str, str]) -> str:
    """The email's HTML part: merge fields escaped as when it is sent, then sanitised."""
    return nh3.clean(_render(template, fields, autoescape=True))


def campaign_languages(*, campaign: Campaign) -> list[str]:
    """The languages the campaign has content in, the workspace's default first: the ones a
    preview can be asked for."""
    default = workspace_language(campaign.workspace)
    found: set[str] = set()
    if campaign.pk is not None:
        found.update(campaign.post_variants.values_list("language", flat=True))
    if campaign.message is not None:
        found.update(message_languages(message=campaign.message).variants)
    return [default, *sorted(found - {default})]


def campaign_post_previews(
    *, campaign: Campaign, networks: list[str] | None = None, language: str = ""
) -> list[PostPreview]:
    """Each network's post in ``language`` (empty: as each account would post it);
    ``networks`` overrides the saved accounts' (an unsaved edit)."""
    if networks is None:
        networks = (
            sorted({a.network for a in campaign.accounts.all()}) if campaign.pk is not None else []
        )
    previews = []
    for network in networks:
        post = campaign_post_request(campaign=campaign, network=network, language=language)
        if network == "x":
            text = XPublisher.tweet_text(post)
            length = _("%(used)s/280 as X counts") % {"used": x_weighted_length(text)}
        elif network == "instagram":
            text = InstagramPublisher.caption(post)
            length = f"{len(text)}/2200"
        else:
            text = post.text + (f"\n{post.link}" if post.link else "")
            length = _("%(count)s characters") % {"count": len(post.text)}
        previews.append(
            PostPreview(
                network=network,
                text=text,
                image_url=post.image_url if network != "x" else "",
                length=length,
                problems=publisher_for(network=network).content_problems(post=post),
            )
        )
    return previews


def campaign_fallback_previews(
    *, campaign: Campaign, contact: Contact | None = None, language: str = ""
) -> tuple[list[ChannelPreview], str]:
    """Each fallback channel's message for ``contact`` (else a sample one), and who that is, in
    the content a contact of ``language`` gets (empty: the picked contact's language, else the
    workspace's default)."""
    if campaign.message is None:
        return [], ""
    languages = message_languages(message=campaign.message)
    wanted = language or (contact.locale if contact is not None else "") or languages.default
    fields, who = _sample_fields(campaign, contact)
    previews = []
    for channel in campaign.fallback_channels or []:
        # The same rule as the send: the variant, else the default's, else the base content.
        message = languages.source(
            language=languages.language_for(locale=wanted, channel=channel), channel=channel
        )
        if channel == Channel.EMAIL:
            previews.append(
                ChannelPreview(
                    channel,
                    _render_text(message.email_subject, fields),
                    _render_text(message.email_text, fields) if message.email_text else "",
                    html=_render_html(message.email_html, fields) if message.email_html else "",
                )
            )
        elif channel == Channel.SMS:
            body = _render_text(message.sms_text, fields)
            count = sms_segments_count(text=body)
            previews.append(
                ChannelPreview(
                    channel,
                    "",
                    body,
                    _("%(segments)s segment(s), %(encoding)s")
                    % {"segments": count.segments, "encoding": count.encoding},
                )
            )
        elif channel == Channel.PUSH:
            previews.append(
                ChannelPreview(
                    channel,
                    _render_text(message.push_title, fields),
                    _render_text(message.push_body, fields),
                    message.push_url,
                )
            )
    return previews, who


def campaign_preview_context(
    *,
    campaign: Campaign,
    contact: Contact | None = None,
    networks: list[str] | None = None,
    language: str = "",
) -> dict[str, object]:
    """What the composer's preview fragment renders: posts per network, then the fallback
    message per channel as ``contact`` (or a sample contact) would get it. Plain strings only;
    the template escapes them and frames the email's sanitised HTML."""
    fallback, who = campaign_fallback_previews(
        campaign=campaign, contact=contact, language=language
    )
    networks_labels = dict(SocialNetwork.choices)
    channel_labels = dict(Channel.choices)
    return {
        "posts": [
            {"label": networks_labels.get(p.network, p.network), "p": p}
            for p in campaign_post_previews(campaign=campaign, networks=networks, language=language)
        ],
        "fallback": [{"label": channel_labels.get(p.channel, p.channel), "p": p} for p in fallback],
        "who": who,
    }
