"""What is missing before a campaign can be scheduled, as sentences a marketer can act on.

One list, used by the admin editor (shown above the form), the API (the 400 detail) and
``campaign_schedule`` (which refuses while it is not empty).
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.content import OVERRIDABLE, campaign_post_request
from campaigns.models import (
    FALLBACK_CHANNELS,
    Campaign,
    OutagePolicy,
    SocialAccount,
    SocialNetwork,
)
from contacts.language import primary_language, workspace_language
from contacts.models import Channel
from contacts.segments import segment_problem
from delivery.models import Message, MessageVariant
from delivery.publishers import publisher_for
from delivery.templating import marketer_template_problem, marketer_template_validate

# Whole sentences per channel (not a channel code slotted into one): each reads naturally once
# translated.
_CHANNEL_MISSING = {
    Channel.EMAIL: gettext_lazy(
        "The fallback message has no email content: add an email subject and body."
    ),
    Channel.SMS: gettext_lazy("The fallback message has no SMS content: add an SMS text."),
    Channel.PUSH: gettext_lazy(
        "The fallback message has no web push content: add a push title and body."
    ),
}


def campaign_problems(
    *, campaign: Campaign, now: datetime | None = None, check_schedule: bool = True
) -> list[str]:
    """Everything that stops ``campaign`` from being scheduled (empty: ready).

    ``check_schedule=False`` skips the scheduled time (for "publish now")."""
    now = now or timezone.now()
    problems: list[str] = []
    if not campaign.name.strip():
        problems.append(_("Give the campaign a name."))
    if check_schedule:
        problems.extend(_schedule_problems(campaign, now))
    problems.extend(_override_problems(campaign))
    if campaign.pk is None:
        problems.append(_("Save the campaign and choose the accounts to publish to."))
        return problems
    accounts = list(campaign.accounts.all())
    if not accounts:
        problems.append(_("Choose at least one social account to publish to."))
    problems.extend(_workspace_problems(campaign, accounts))
    if campaign.segment is not None and (problem := segment_problem(campaign.segment)):
        problems.append(
            _("The segment “%(name)s” cannot be used: %(problem)s")
            % {"name": campaign.segment.name, "problem": problem}
        )
    problems.extend(_account_problems(campaign, accounts, now))
    problems.extend(_fallback_problems(campaign))
    return problems


def _workspace_problems(campaign: Campaign, accounts: list[SocialAccount]) -> list[str]:
    """What a campaign uses must be its own workspace's: anything else (a bug, a hand-edited
    database) stops it rather than publish through another client's account or message their
    audience."""
    problems = []
    if any(a.workspace_id != campaign.workspace_id for a in accounts):
        problems.append(_("A social account belongs to another workspace: remove it."))
    if campaign.segment is not None and campaign.segment.workspace_id != campaign.workspace_id:
        problems.append(_("The segment belongs to another workspace: choose one of this one's."))
    if campaign.message is not None and campaign.message.workspace_id != campaign.workspace_id:
        problems.append(
            _("The fallback message belongs to another workspace: write one in this one.")
        )
    return problems


def _schedule_problems(campaign: Campaign, now: datetime) -> list[str]:
    if campaign.scheduled_at is None:
        return [_("Pick the date and time to publish.")]
    if campaign.scheduled_at <= now:
        return [
            _(
                "The scheduled time %(time)s UTC is in the past: pick a time in the future, "
                "or use “publish now”."
            )
            % {"time": f"{campaign.scheduled_at:%Y-%m-%d %H:%M}"}
        ]
    return []


def _override_problems(campaign: Campaign) -> list[str]:
    if not isinstance(campaign.overrides, dict):
        return [_('Per-network overrides must be an object such as {"x": {"text": "..."}}.')]
    problems = []
    known = set(SocialNetwork.values)
    network_labels = dict(SocialNetwork.choices)
    for network, override in campaign.overrides.items():
        if network not in known:
            problems.append(
                _("Override for unknown network “%(network)s”: use one of %(known)s.")
                % {"network": str(network)[:40], "known": ", ".join(sorted(known))}
            )
        elif not isinstance(override, dict) or set(override) - set(OVERRIDABLE):
            problems.append(
                _("The override for %(network)s may only set %(fields)s (as text).")
                % {
                    "network": network_labels.get(network, network),
                    "fields": ", ".join(OVERRIDABLE),
                }
            )
    return problems


def _account_problems(
    campaign: Campaign, accounts: list[SocialAccount], now: datetime
) -> list[str]:
    problems: list[str] = []
    due = campaign.scheduled_at or now
    seen_networks: set[tuple[str, str]] = set()
    for account in accounts:
        names = {"network": account.get_network_display(), "name": account.display_name}
        if not account.active:
            problems.append(
                _("The %(network)s account “%(name)s” is switched off: turn it on or remove it.")
                % names
            )
        if not account.access_token_encrypted:
            problems.append(
                _("The %(network)s account “%(name)s” has no access token: connect it first.")
                % names
            )
        elif account.token_expires_at is not None and account.token_expires_at <= due:
            problems.append(
                _(
                    "The access token of the %(network)s account “%(name)s” expires %(time)s "
                    "UTC, before the campaign publishes: reconnect the account."
                )
                % {**names, "time": f"{account.token_expires_at:%Y-%m-%d %H:%M}"}
            )
        # Each language a network is posted in is checked (an Italian text can pass X's
        # limit where the English one does not).
        seen = (account.network, account.language)
        if seen in seen_networks or account.network == SocialNetwork.WHATSAPP:
            continue
        seen_networks.add(seen)
        post = campaign_post_request(campaign=campaign, network=account.network, account=account)
        problems.extend(publisher_for(network=account.network).content_problems(post=post))
    if any(a.network == SocialNetwork.WHATSAPP for a in accounts):
        # WhatsApp is one-to-one: a template message per consented contact, so it needs the
        # template and an audience rather than post text.
        if campaign.message is None or not campaign.message.whatsapp_template:
            problems.append(
                _(
                    "WhatsApp sends an approved template to each consented contact: set the "
                    "message's WhatsApp template name."
                )
            )
        if campaign.segment_id is None:
            problems.append(_("Choose the audience (a CRM segment) for the WhatsApp messages."))
    return problems


def _fallback_problems(campaign: Campaign) -> list[str]:
    needs_audience = campaign.outage_policy != OutagePolicy.SKIP
    problems: list[str] = []
    if needs_audience and campaign.segment_id is None:
        problems.append(_("Choose the audience (a CRM segment) the fallback messages go to."))
    if campaign.outage_policy == OutagePolicy.SKIP:
        return problems
    channels = campaign.fallback_channels
    if not isinstance(channels, list) or not channels:
        problems.append(
            _(
                "List the channels you own to fall back to, in order (for example web push, "
                "email, SMS), or set the outage policy to skip."
            )
        )
        return problems
    unknown = [str(c) for c in channels if c not in FALLBACK_CHANNELS]
    if unknown:
        problems.append(
            _("Unknown fallback channel(s) %(channels)s: use web push, email or SMS.")
            % {"channels": ", ".join(u[:20] for u in unknown)}
        )
    if len(set(map(str, channels))) != len(channels):
        problems.append(_("Each fallback channel may appear once."))
    message = campaign.message
    if message is None:
        problems.append(_("Write the fallback message (what each channel says during an outage)."))
        return problems
    problems.extend(_template_problems(message))
    problems.extend(_variant_problems(message))
    # A channel is covered when its last resort has content: the default language's variant
    # when there is one, else the base (delivery/variants.py).
    ready = set(message.channels_ready())
    default = MessageVariant.objects.filter(
        message_id=message.pk, language=workspace_language(campaign.workspace)
    ).first()
    if default is not None:
        ready |= set(default.channels_ready())
    for channel in channels:
        if channel in _CHANNEL_MISSING and channel not in ready:
            problems.append(str(_CHANNEL_MISSING[channel]))
    if message.purpose != campaign.purpose:
        problems.append(
            _(
                "The fallback message is for %(message_purpose)s but the campaign is "
                "%(campaign_purpose)s: make them match."
            )
            % {
                "message_purpose": message.get_purpose_display().lower(),
                "campaign_purpose": campaign.get_purpose_display().lower(),
            }
        )
    if Channel.SMS in channels and campaign.sms_budget_segments == 0:
        problems.append(_("The SMS budget is 0 segments: raise it or remove SMS from the plan."))
    if (
        campaign.outage_policy == OutagePolicy.HOLD_THEN_REROUTE
        and campaign.hold_then_reroute_minutes > campaign.max_hold_minutes
    ):
        problems.append(
            _(
                "Holding %(hold)s minutes before rerouting exceeds the maximum hold of "
                "%(max)s minutes."
            )
            % {"hold": campaign.hold_then_reroute_minutes, "max": campaign.max_hold_minutes}
        )
    return problems


def _template_problems(message: Message) -> list[str]:
    """Texts saved before the template rules that no longer compile: their deliveries would
    fail, so the campaign is stopped here, with the line and what is wrong."""
    problems = []
    for field in message._meta.concrete_fields:
        if marketer_template_validate not in field.validators:
            continue
        source = getattr(message, field.attname)
        if source and (problem := marketer_template_problem(source)):
            problems.append(
                _("The fallback message's %(part)s cannot be sent: %(problem)s")
                % {"part": field.verbose_name, "problem": problem}
            )
    return problems


def _variant_problems(message: Message) -> list[str]:
    """The same template check for each language variant, naming the language."""
    problems = []
    for variant in MessageVariant.objects.filter(message_id=message.pk).order_by("language"):
        for field in variant._meta.concrete_fields:
            if marketer_template_validate not in field.validators:
                continue
            source = getattr(variant, field.attname)
            if source and (problem := marketer_template_problem(source)):
                problems.append(
                    _("The %(language)s variant's %(part)s cannot be sent: %(problem)s")
                    % {"language": variant.language, "part": field.verbose_name, "problem": problem}
                )
    return problems


def _known_languages() -> frozenset[str]:
    from django.conf.locale import LANG_INFO

    return frozenset(code.split("-", 1)[0] for code in LANG_INFO)


def content_language_clean(value: object) -> str:
    """A content variant's language as stored: the primary subtag of a language Django knows
    (``it-IT`` -> ``it``). Raises ValueError with the reason for anything else."""
    raw = str(value or "").strip()
    language = primary_language(raw)
    if not raw:
        raise ValueError(_("Give the variant's language, e.g. it or en."))
    if not language or language not in _known_languages():
        raise ValueError(
            _(
                'Unknown language tag "%(tag)s": use an ISO 639-1 code such as it, en or de '
                "(a region such as it-IT is accepted and stored as it)."
            )
            % {"tag": raw[:35]}
        )
    return language
