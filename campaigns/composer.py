"""What the campaign composer shows beside the form: the outage policy in plain words, the merge
tags a text may use, the audience per channel if a network went down now, and contacts to
preview with. Reads only; every query is scoped to the campaign's (or the caller's) workspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns.models import (
    FALLBACK_CHANNELS,
    Campaign,
    FailbackChoice,
    OutagePolicy,
    SendMode,
    SocialNetwork,
)
from campaigns.reroute import campaign_audience
from contacts.attribute_keys import attribute_key_problem
from contacts.models import Channel, Contact, PushSubscription, consent_bit
from continuity.models import Workspace

NAMED_TAGS = ("first_name", "last_name", "email")
# Attribute names are read from a bounded sample of the newest contacts: the full table can
# hold millions of rows and a marketer needs the names in use, not a census.
ATTRIBUTE_SAMPLE = 500
ATTRIBUTE_TAGS_MAX = 30
CONTACT_SEARCH_MAX = 10


@dataclass(frozen=True)
class MergeTag:
    tag: str
    help: str


def merge_tags_named() -> list[MergeTag]:
    """The merge tags every contact has."""
    return [
        MergeTag("{{ first_name }}", _("the contact's first name")),
        MergeTag("{{ last_name }}", _("the contact's last name")),
        MergeTag("{{ email }}", _("the contact's email address")),
    ]


def merge_tags(*, workspace: Workspace | int) -> list[MergeTag]:
    """The named fields, then the attribute names found on the workspace's newest contacts."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    tags = merge_tags_named()
    newest = (
        Contact.objects.filter(workspace_id=workspace_id, erased_at__isnull=True)
        .order_by("-pk")
        .values("pk")[:ATTRIBUTE_SAMPLE]
    )
    # jsonb_object_keys is set-returning: one row per key of each sampled contact.
    keys = list(
        Contact.objects.filter(pk__in=Subquery(newest))
        .alias(shape=Func(F("attributes"), function="jsonb_typeof", output_field=CharField()))
        .filter(shape="object")
        .annotate(key=Func(F("attributes"), function="jsonb_object_keys", output_field=CharField()))
        .values_list("key", flat=True)
        .order_by("key")
        .distinct()[: ATTRIBUTE_TAGS_MAX * 2]
    )
    named = set(NAMED_TAGS)
    for key in keys:
        if key in named or attribute_key_problem(key) is not None:
            continue
        tags.append(
            MergeTag("{{ " + key + " }}", _("the contact's “%(key)s” attribute") % {"key": key})
        )
        if len(tags) >= len(NAMED_TAGS) + ATTRIBUTE_TAGS_MAX:
            break
    return tags


def _network_names(networks: list[str]) -> str:
    labels = [str(SocialNetwork(n).label) for n in networks if n in SocialNetwork.values]
    if not labels:
        return _("a network it publishes to")
    if len(labels) == 1:
        return labels[0]
    return _("%(some)s or %(last)s") % {"some": ", ".join(labels[:-1]), "last": labels[-1]}


def policy_in_words(*, campaign: Campaign, networks: list[str]) -> list[str]:
    """What happens if a network is down when the campaign is due, then when it comes back."""
    where = _network_names(networks)
    policy = campaign.outage_policy
    if policy == OutagePolicy.SKIP:
        return [
            _(
                "If %(where)s is down when this is due, nothing is published there and no "
                "message is sent instead; the miss is recorded."
            )
            % {"where": where}
        ]
    if policy == OutagePolicy.REROUTE:
        first = _(
            "If %(where)s is down when this is due, the fallback messages go out at once to "
            "the audience, on the channels below."
        ) % {"where": where}
    elif policy == OutagePolicy.HOLD:
        first = _(
            "If %(where)s is down when this is due, the post waits and is published when the "
            "network is back. If it is still down %(minutes)d minutes after the due time, the "
            "fallback messages go out instead."
        ) % {"where": where, "minutes": campaign.max_hold_minutes}
    else:
        first = _(
            "If %(where)s is down when this is due, the post waits %(minutes)d minutes for the "
            "network to come back; if it is still down then, the fallback messages go out."
        ) % {"where": where, "minutes": campaign.hold_then_reroute_minutes}
    if campaign.on_failback == FailbackChoice.CANCEL:
        back = _("When the network comes back, messages not yet sent are cancelled.")
    else:
        back = _("When the network comes back, the messages already planned are still sent.")
    return [first, back]


@dataclass
class AudienceForecast:
    """If ``network`` went down now: who would get what, and who nobody could reach, why."""

    network: str
    network_label: str
    contacts: int = 0
    per_channel: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    problem: str = ""

    @property
    def channel_words(self) -> list[str]:
        """ "2,141 get an email", in the order of the campaign's fallback channels."""
        return [channel_words(c, n) for c, n in self.per_channel.items() if n]

    @property
    def left_out_words(self) -> list[str]:
        return [left_out_words(reason, n) for reason, n in sorted(self.left_out.items())]


def channel_words(channel: str, count: int) -> str:
    words = {
        "email": ngettext("%(n)s gets an email", "%(n)s get an email", count),
        "sms": ngettext("%(n)s gets an SMS", "%(n)s get an SMS", count),
        "push": ngettext("%(n)s gets a push", "%(n)s get a push", count),
        "whatsapp": ngettext(
            "%(n)s gets a WhatsApp message", "%(n)s get a WhatsApp message", count
        ),
    }.get(channel) or _("%(n)s on %(channel)s")
    return words % {"n": f"{count:,}", "channel": channel}


def left_out_words(reason: str, count: int) -> str:
    words = {
        "no_consent": ngettext("%(n)s has no consent", "%(n)s have no consent", count),
        "suppressed": ngettext(
            "%(n)s is blocked (bounced, complained or unsubscribed)",
            "%(n)s are blocked (bounced, complained or unsubscribed)",
            count,
        ),
        "unreachable": ngettext(
            "%(n)s has no address on those channels",
            "%(n)s have no address on those channels",
            count,
        ),
        "over_sms_budget": ngettext(
            "%(n)s is over the SMS budget", "%(n)s are over the SMS budget", count
        ),
        "frequency_cap": ngettext(
            "%(n)s was messaged too often lately", "%(n)s were messaged too often lately", count
        ),
        "already_reached": ngettext(
            "%(n)s was already reached", "%(n)s were already reached", count
        ),
        "delayed_quiet_hours": ngettext(
            "%(n)s is in quiet hours (sent later)", "%(n)s are in quiet hours (sent later)", count
        ),
    }.get(reason)
    if words is None:
        words = _("%(n)s left out (%(reason)s)")
    return words % {"n": f"{count:,}", "reason": reason}


def _reachable(channel: str) -> Q:
    """Has an address on ``channel``, as reroute planning reads it (delivery.materialize)."""
    if channel == Channel.EMAIL:
        return Q(email__isnull=False) & ~Q(email="")
    if channel in (Channel.SMS, Channel.WHATSAPP):
        return Q(phone__isnull=False) & ~Q(phone="")
    return Q(
        Exists(
            PushSubscription.objects.filter(
                contact_id=OuterRef("pk"), active=True, workspace_id=OuterRef("workspace_id")
            )
        )
    )


def _may_send(channel: str, purpose: str) -> Q:
    # Contact.sendable: consent granted and not suppressed, one bit per (channel, purpose),
    # the column reroute planning reads.
    bit = consent_bit(channel, purpose)
    return Q(**{f"_send_{channel}": bit})


def audience_forecast(*, campaign: Campaign, networks: list[str]) -> list[AudienceForecast]:
    """Who would get what if a network the campaign publishes to went down now: one aggregate
    over the audience with the reroute's own rules for consent (the folded ``sendable`` bits),
    addresses and the order of the fallback channels. The SMS budget, quiet hours and the
    frequency cap are applied on the day (the outage drill runs the full planning)."""
    labels = [str(SocialNetwork(n).label) for n in networks if n in SocialNetwork.values]
    forecast = AudienceForecast(
        network=",".join(networks), network_label=_network_names(networks) if labels else ""
    )
    if not labels:
        forecast.network_label = _("a network it publishes to")
    channels = [c for c in (campaign.fallback_channels or []) if c in FALLBACK_CHANNELS]
    if campaign.outage_policy == OutagePolicy.SKIP:
        forecast.problem = _("the policy is to skip, so nothing would be sent.")
        return [forecast]
    if campaign.message_id is None or not channels:
        forecast.problem = _("choose the fallback channels and message to count who gets what.")
        return [forecast]
    audience = campaign_audience(campaign)
    for channel in channels:
        bit = consent_bit(channel, campaign.purpose)
        audience = audience.alias(**{f"_send_{channel}": F("sendable").bitand(bit)})
    any_consent = Q()
    for channel in channels:
        any_consent |= _may_send(channel, campaign.purpose)
    if campaign.send_mode == SendMode.ALL:
        counts = audience.aggregate(
            contacts=Count("pk"),
            no_consent=Count("pk", filter=~any_consent),
            **{
                channel: Count(
                    "pk", filter=_may_send(channel, campaign.purpose) & _reachable(channel)
                )
                for channel in channels
            },
        )
        forecast.contacts = counts.pop("contacts")
        no_consent = counts.pop("no_consent")
        forecast.per_channel = {c: counts[c] for c in channels}
        forecast.left_out = {"no_consent": no_consent} if no_consent else {}
        return [forecast]
    # First reachable: each contact counts once, on the first channel that may reach them.
    bucket = Case(
        *[
            When(_may_send(channel, campaign.purpose) & _reachable(channel), then=Value(channel))
            for channel in channels
        ],
        When(any_consent, then=Value("unreachable")),
        default=Value("no_consent"),
        output_field=CharField(),
    )
    rows = audience.annotate(bucket=bucket).values("bucket").annotate(n=Count("pk")).order_by()
    found = {row["bucket"]: row["n"] for row in rows}
    forecast.contacts = sum(found.values())
    forecast.per_channel = {c: found[c] for c in channels if found.get(c)}
    forecast.left_out = {r: found[r] for r in ("no_consent", "unreachable") if found.get(r)}
    return [forecast]


def contacts_search(*, workspace: Workspace | int, query: str) -> list[tuple[int, str]]:
    """Up to ten of the workspace's contacts whose email, phone or name starts with ``query``
    (prefix matches: they use the per-workspace identifier indexes)."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    text = query.strip()[:100]
    qs = Contact.objects.filter(workspace_id=workspace_id, erased_at__isnull=True)
    if text.isdigit():
        match = Q(pk=int(text)) | Q(phone__startswith=f"+{text}")
    elif text:
        match = (
            Q(email__istartswith=text)
            | Q(phone__startswith=text)
            | Q(first_name__istartswith=text)
            | Q(last_name__istartswith=text)
        )
    else:
        match = Q()
    rows = qs.filter(match).order_by("pk").values("pk", "first_name", "last_name", "email")
    return [(row["pk"], _contact_label(row)) for row in rows[:CONTACT_SEARCH_MAX]]


def _contact_label(row: dict[str, object]) -> str:
    email = f"<{row['email']}>" if row["email"] else ""
    parts = (str(row["first_name"] or ""), str(row["last_name"] or ""), email)
    return " ".join(p for p in parts if p) or f"#{row['pk']}"
