"""The delivery app's kinds of record that expire (continuity/retention.py): provider webhook
receipts, deliveries (with their timelines) and delivery events; and its part of the records of
processing (continuity/records.py): the owned channels and their providers."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from contacts.models import Channel
from continuity import retention_rules as rules
from continuity.models import Workspace
from continuity.records import (
    INSTALL_ACCOUNT,
    US_TRANSFER,
    WORKSPACE_ACCOUNT,
    Contribution,
    Processor,
    records_contributor_register,
)
from continuity.retention import RetentionKind, retention_kind_register
from delivery.models import WorkspaceCredentials

retention_kind_register(
    RetentionKind(
        key=rules.PROVIDER_RECEIPTS,
        label=_("Provider webhook receipts"),
        table="delivery_providerreceipt",
        age_column="created_at",
        what=_(
            "Raw bodies of SendGrid and Twilio webhooks: delivery reports, bounces, complaints, "
            "inbound SMS (they hold email addresses, phone numbers and message text)."
        ),
        minimum_reason=_(
            "investigating a delivery problem or a complaint with the provider's own report"
        ),
        # Unmatched ones are re-applied for DELIVERY_RECEIPT_RETRY_S (an hour), far inside any
        # period; past it they are as dead as the rest.
    )
)

# Rows still in flight are left alone, whatever their age: the sweeper owns them, and a planned
# or queued row still guards against a second copy of its message.
_SETTLED = "AND t.status NOT IN ('planned', 'queued', 'sending')"

retention_kind_register(
    RetentionKind(
        key=rules.DELIVERIES,
        label=_("Deliveries"),
        table="delivery_delivery",
        age_column="created_at",
        what=_(
            "Which message went to whom on which channel, when, and how it ended (with its "
            "timeline of events). Rows still being sent are kept until they settle."
        ),
        minimum_reason=_(
            "answering a person's question about what was sent to them, provider disputes and "
            "billing, and the daily frequency cap"
        ),
        where=_SETTLED,
        dependents=("delivery_deliveryevent.delivery_id",),
    )
)

retention_kind_register(
    RetentionKind(
        key=rules.DELIVERY_EVENTS,
        label=_("Delivery events"),
        table="delivery_deliveryevent",
        age_column="occurred_at",
        what=_(
            "The timeline of each delivery (queued, sent, delivered, opened, clicked, bounced) "
            "with provider details. Deleted with its delivery at the latest."
        ),
        minimum_reason=_("investigating a delivery problem with the provider"),
    )
)


def _processors(workspace: Workspace) -> Contribution:
    """The owned channels the workspace can send on, and whose provider account carries each."""
    row = WorkspaceCredentials.objects.filter(workspace=workspace).first()
    install = set(settings.DELIVERY_INSTALL_CHANNELS)
    own = {
        Channel.EMAIL: bool(row and row.sendgrid_api_key_encrypted),
        Channel.SMS: bool(row and row.twilio_account_sid and row.twilio_auth_token_encrypted),
        Channel.PUSH: bool(row and row.vapid_private_key_encrypted),
        Channel.WHATSAPP: bool(
            row and row.whatsapp_phone_number_id and row.whatsapp_access_token_encrypted
        ),
    }
    found = Contribution()
    for channel, name, service, data in _PROVIDERS:
        if not (own[channel] or channel in install):
            continue
        found.channels.append(channel)
        if name:
            found.processors.append(
                Processor(
                    name=name,
                    service=service,
                    channel=channel,
                    data=data,
                    account=WORKSPACE_ACCOUNT if own[channel] else INSTALL_ACCOUNT,
                    transfer=US_TRANSFER,
                )
            )
    return found


# Push services are the browsers' vendors, known from the subscriptions (contacts/retention.py).
_PROVIDERS = (
    (
        Channel.EMAIL,
        "SendGrid (Twilio Inc.)",
        _("Email delivery"),
        _("Email address, name and merge fields, message content, delivery events"),
    ),
    (
        Channel.SMS,
        "Twilio Inc.",
        _("SMS delivery"),
        _("Phone number, message text, delivery reports and replies"),
    ),
    (Channel.PUSH, "", "", ""),
    (
        Channel.WHATSAPP,
        "WhatsApp (Meta Platforms)",
        _("WhatsApp Cloud API messages"),
        _("Phone number, template parameters, delivery reports"),
    ),
)

records_contributor_register(_processors)
