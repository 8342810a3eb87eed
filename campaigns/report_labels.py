"""Words a marketer reads instead of the engine's codes, and money with its currency.

The reroute engine records reasons and counts under short codes ("no_consent", "sms_only_used");
every page and download that shows them goes through these tables, so no code word leaks out.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from campaigns.models import OutagePolicy
from contacts.models import Channel

# Why a contact got nothing from a reroute (delivery.materialize.EXCLUSION_REASONS).
LEFT_OUT_LABELS: dict[str, Promise] = {
    "no_consent": _("No consent on any fallback channel"),
    "suppressed": _("Suppressed (bounced, complained or unsubscribed)"),
    "unreachable": _("No address, number or push subscription"),
    "over_sms_budget": _("Over the SMS budget"),
    "frequency_cap": _("Already got the most messages allowed per day"),
    "already_reached": _("Already reached on WhatsApp"),
}
# Not a "left out" reason: these contacts do get the message, later.
DELAYED_QUIET_HOURS = "delayed_quiet_hours"
# Budget bookkeeping the engine keeps beside the reasons; never shown as a reason.
BOOKKEEPING_PREFIX = "sms_"

# What a contact left out of a campaign is called in the per-contact download, when the reason is
# read back from the contact's current consent (the engine counts reasons, it stores none per
# contact).
LEFT_OUT_NOW_LABELS: dict[str, Promise] = {
    "suppressed": LEFT_OUT_LABELS["suppressed"],
    "no_consent": LEFT_OUT_LABELS["no_consent"],
    "other": _("Another rule (no address, SMS budget, daily limit or already reached)"),
}

COLUMN_LABELS: dict[str, Promise] = {
    "planned": _("Planned"),
    "sent": _("Sent"),
    "delivered": _("Delivered"),
    "failed": _("Failed"),
    "unknown": _("Outcome unknown"),
    "cancelled": _("Cancelled"),
    "suppressed": _("Suppressed at send"),
    "waiting": _("Waiting (quiet hours or back-off)"),
}

DELIVERY_STATUS_LABELS: dict[str, Promise] = {
    "planned": _("Planned"),
    "queued": _("Queued"),
    "sending": _("Sending"),
    "sent": _("Sent"),
    "delivered": _("Delivered"),
    "opened": _("Opened"),
    "clicked": _("Clicked"),
    "bounced": _("Bounced"),
    "failed": _("Failed"),
    "undelivered": _("Undelivered"),
    "unknown": _("Outcome unknown"),
    "suppressed": _("Suppressed at send"),
    "cancelled": _("Cancelled"),
}


def channel_label(channel: str) -> str:
    try:
        return str(Channel(channel).label)
    except ValueError:
        return channel


def policy_label(policy: str) -> str:
    try:
        return str(OutagePolicy(policy).label)
    except ValueError:
        return policy


def left_out_label(reason: str) -> str:
    return str(LEFT_OUT_LABELS.get(reason, reason.replace("_", " ")))


def left_out_rows(exclusions: dict[str, int]) -> list[tuple[str, int]]:
    """(label, contacts) for the reasons contacts got nothing; delays and bookkeeping apart."""
    return [
        (left_out_label(reason), int(count))
        for reason, count in sorted(exclusions.items())
        if reason != DELAYED_QUIET_HOURS and not reason.startswith(BOOKKEEPING_PREFIX) and count
    ]


def sms_segment_price() -> Decimal:
    """The install's price of one SMS segment (REROUTE_SMS_SEGMENT_COST)."""
    return Decimal(str(settings.REROUTE_SMS_SEGMENT_COST))


def money(amount: Decimal | float) -> str:
    """An amount with its currency, in the reader's number format: "2.34 USD", "2,34 USD"."""
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    return f"{number_format(value, 2, use_l10n=True)} {settings.REROUTE_SMS_CURRENCY}"
