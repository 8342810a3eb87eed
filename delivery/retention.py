"""The delivery app's kinds of record that expire (continuity/retention.py): provider webhook
receipts, deliveries (with their timelines) and delivery events."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from continuity import retention_rules as rules
from continuity.retention import RetentionKind, retention_kind_register

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
