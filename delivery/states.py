"""The Delivery state machine: which status may follow which.

Every status change goes through delivery.transitions, which turns this table into the WHERE clause
of one bulk UPDATE, so an illegal move (a delivered message going back to sending) is refused by
the database statement itself rather than by a read-then-write that could race a webhook.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import pgettext_lazy


class DeliveryStatus(models.TextChoices):
    PLANNED = "planned", pgettext_lazy("delivery status", "Planned")
    QUEUED = "queued", pgettext_lazy("delivery status", "Queued")
    SENDING = "sending", pgettext_lazy("delivery status", "Sending")
    SENT = "sent", pgettext_lazy("delivery status", "Sent")
    DELIVERED = "delivered", pgettext_lazy("delivery status", "Delivered")
    OPENED = "opened", pgettext_lazy("delivery status", "Opened")
    CLICKED = "clicked", pgettext_lazy("delivery status", "Clicked")
    BOUNCED = "bounced", pgettext_lazy("delivery status", "Bounced")
    FAILED = "failed", pgettext_lazy("delivery status", "Failed")
    UNDELIVERED = "undelivered", pgettext_lazy("delivery status", "Undelivered")
    UNKNOWN = "unknown", pgettext_lazy("delivery status", "Unknown")
    SUPPRESSED = "suppressed", pgettext_lazy("delivery status", "Suppressed")
    CANCELLED = "cancelled", pgettext_lazy("delivery status", "Cancelled")


S = DeliveryStatus

# to-status -> the statuses it may come from. Provider webhooks arrive late, repeated and out of
# order (SendGrid repeats events; "delivered" can overtake "sent"), so progress statuses accept
# every earlier stage of a message that has left, including `unknown`, which a webhook resolves.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.PLANNED, S.FAILED}),  # planned rows released; failed ones retried
    S.SENDING: frozenset({S.QUEUED}),
    S.SENT: frozenset({S.SENDING, S.UNKNOWN}),
    S.DELIVERED: frozenset({S.SENDING, S.SENT, S.UNKNOWN}),
    S.OPENED: frozenset({S.SENT, S.DELIVERED, S.UNKNOWN}),
    S.CLICKED: frozenset({S.SENT, S.DELIVERED, S.OPENED, S.UNKNOWN}),
    S.BOUNCED: frozenset({S.SENDING, S.SENT, S.DELIVERED, S.UNKNOWN}),
    S.UNDELIVERED: frozenset({S.SENDING, S.SENT, S.UNKNOWN}),
    S.FAILED: frozenset({S.SENDING, S.SENT, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.SENDING}),
    S.SUPPRESSED: frozenset({S.PLANNED, S.QUEUED, S.SENDING}),
    S.CANCELLED: frozenset({S.PLANNED, S.QUEUED}),
}

# A retryable provider error puts a claimed row back in the queue: the one move "backwards" that is
# safe, because the provider said the message was not accepted.
RETRY_FROM: frozenset[str] = frozenset({S.SENDING})

# Statuses in which the message has (or may have) left: never send these again.
LEFT_STATUSES: frozenset[str] = frozenset(
    {S.SENDING, S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.BOUNCED, S.UNDELIVERED, S.UNKNOWN}
)
FINAL_STATUSES: frozenset[str] = frozenset(
    {S.CLICKED, S.BOUNCED, S.UNDELIVERED, S.SUPPRESSED, S.CANCELLED}
)
# When a transition time is kept on the row itself, which column holds it.
TIMESTAMP_FIELD: dict[str, str] = {
    S.QUEUED: "queued_at",
    S.SENDING: "sending_at",
    S.SENT: "sent_at",
    S.DELIVERED: "delivered_at",
    S.OPENED: "opened_at",
    S.CLICKED: "clicked_at",
    S.BOUNCED: "failed_at",
    S.FAILED: "failed_at",
    S.UNDELIVERED: "failed_at",
    S.SUPPRESSED: "failed_at",
    S.CANCELLED: "failed_at",
    S.UNKNOWN: "failed_at",
}


def transition_allowed(*, source: str, target: str) -> bool:
    return source in ALLOWED_FROM.get(target, frozenset())
