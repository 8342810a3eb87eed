"""Mails the system sends itself (double opt-in, preference link, email-change confirmation),
through the product's own email channel: the workspace's SendGrid account (or the install's),
a Delivery row written before any provider call, one Celery task per mail.

contacts decides what a mail says and whether it is still wanted (contacts.link_mail
``system_mail_content``) and asks for it by the dotted path in CONTACTS_SYSTEM_MAIL_SENDER, since
contacts never imports delivery. Here the row is written in the asker's transaction, so a person
whose double opt-in is stored as pending always has a visible mail (queued, sent, failed) next to
it, and the task is enqueued on commit.

The task claims its row (queued -> sending, attempt + 1) in one guarded UPDATE, so a redelivered
task sends nothing twice. The provider's answer is sorted as for campaign mail: SendGrid down, a
5xx or a 429 puts the row back in the queue with a back-off (at least SendGrid's Retry-After) and
the task retries until DELIVERY_MAX_ATTEMPTS, after which the row says failed and why; a read
timeout (the request may have left) is `unknown`, never retried blindly. Nothing of this reaches
the person who asked: the page or API call that asked has answered already.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import escape, linebreaks, urlize

from contacts.models import Channel, Contact
from delivery.credentials import (
    CredentialsUnreadable,
    credentials_row,
    email_from,
    sendgrid_account,
)
from delivery.models import SYSTEM_MAIL_KINDS, Delivery
from delivery.providers.base import (
    Deferred,
    EmailContent,
    OutboundMessage,
    Outcome,
    Sent,
    Unknown,
)
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus
from delivery.transitions import (
    _events_append,
    deliveries_mark_sent,
    deliveries_retry_later,
    deliveries_transition,
)

logger = logging.getLogger(__name__)

SYSTEM_MAIL_TASK = "delivery.email.system_mail"
NOT_WANTED = "not_wanted"


def system_mail_request(
    *, contact: Contact, kind: str, address: str, purpose: str = ""
) -> int | None:
    """Write a queued system-mail Delivery in the caller's transaction and send its task on
    commit. None when the same mail (kind, purpose, address) is already on its way to the
    contact: that one is sent with a fresh link and serves this ask too."""
    if kind not in SYSTEM_MAIL_KINDS:
        raise ValueError(f"unknown system mail {kind!r}")
    now = timezone.now()
    try:
        with transaction.atomic():
            row = Delivery.objects.create(
                workspace_id=contact.workspace_id,
                message=None,
                contact_id=contact.pk,
                channel=Channel.EMAIL,
                kind=kind,
                address=address[:254],
                purpose=purpose,
                status=DeliveryStatus.QUEUED,
                queued_at=now,
            )
            _events_append(ids=[row.pk], status=DeliveryStatus.QUEUED, at=now, detail=kind)
    except IntegrityError:
        logger.info("system mail %s already on its way", kind, extra={"contact_id": contact.pk})
        return None
    delivery_id = row.pk
    transaction.on_commit(lambda: system_mail_enqueue(delivery_id=delivery_id))
    return delivery_id


def system_mail_enqueue(*, delivery_id: int, countdown: float = 0.0) -> bool:
    """Hand the row to a worker. With the broker down the row stays queued in PostgreSQL and the
    sweeper hands it over later: the person who asked never sees the broker's failure."""
    from continuity.celery import app

    try:
        app.send_task(SYSTEM_MAIL_TASK, args=[delivery_id], countdown=countdown or None)
    except Exception:  # any broker failure: the row is the record, the sweeper retries
        logger.exception("system mail %s not queued: left to the sweeper", delivery_id)
        return False
    return True


@dataclass(frozen=True)
class SystemMailResult:
    """What the task does next: nothing (``retry_after_s`` None) or retry after a back-off."""

    status: str
    retry_after_s: float | None = None


_BRACES = re.compile(r"[{}]")
_BRACE_TAG = {"{": "{% templatetag openbrace %}", "}": "{% templatetag closebrace %}"}


def _literal(text: str) -> str:
    """Text the email channel's template step gives back unchanged: our mails are not marketer
    templates, so no brace in a translation can ever be read as template syntax."""
    return _BRACES.sub(lambda m: _BRACE_TAG[m[0]], text)


def _content(*, delivery: Delivery, subject: str, body: str) -> EmailContent:
    row = credentials_row(workspace_id=delivery.workspace_id)
    html = linebreaks(urlize(escape(body), autoescape=False))
    try:
        return EmailContent(
            subject=_literal(subject),
            html=_literal(html),
            text=_literal(body),
            from_email=email_from(row),
            account=sendgrid_account(row),
        )
    except CredentialsUnreadable as exc:
        # The sender fails the row with this reason and sends nothing under another account.
        return EmailContent(subject="", html="", text="", credentials_error=str(exc))


def _claim(delivery_id: int) -> bool:
    """queued -> sending with attempt + 1, only for a due system row: at most one task sends."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE delivery_delivery SET status = %s, attempt = attempt + 1, sending_at = %s, "
            "updated_at = %s WHERE id = %s AND status = %s AND message_id IS NULL "
            "AND (not_before IS NULL OR not_before <= %s) RETURNING id",
            [DeliveryStatus.SENDING, now, now, delivery_id, DeliveryStatus.QUEUED, now],
        )
        claimed = [row[0] for row in cursor.fetchall()]
        _events_append(ids=claimed, status=DeliveryStatus.SENDING, at=now, detail="system mail")
    return bool(claimed)


def _backoff_s(*, attempt: int, asked_s: float) -> float:
    ceiling = min(
        settings.DELIVERY_INTERRUPT_BACKOFF_MAX_S,
        settings.DELIVERY_RETRY_BASE_S * 2 ** max(attempt - 1, 0),
    )
    jittered = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security  # nosec B311
    return max(asked_s, jittered)


def system_mail_send(*, delivery_id: int) -> SystemMailResult:
    """Send one queued system mail and record the provider's answer on its row."""
    from contacts.link_mail import system_mail_content

    delivery = (
        Delivery.objects.select_related("contact", "contact__workspace")
        .filter(pk=delivery_id, message__isnull=True)
        .first()
    )
    if delivery is None or delivery.status != DeliveryStatus.QUEUED:
        logger.info("system mail %s: nothing to send", delivery_id)
        return SystemMailResult(status=delivery.status if delivery else "missing")
    if delivery.not_before is not None and delivery.not_before > timezone.now():
        # An early copy of the task (a redelivery): the retry already scheduled sends it.
        return SystemMailResult(status=delivery.status)
    content = system_mail_content(
        kind=delivery.kind,
        contact=delivery.contact,
        address=delivery.address,
        purpose=delivery.purpose,
    )
    if content is None:
        # Erased, or the opt-in it confirms was withdrawn or confirmed meanwhile.
        deliveries_transition(
            ids=[delivery_id],
            target=DeliveryStatus.CANCELLED,
            detail="no longer wanted",
            fields={"error_code": NOT_WANTED, "error_text": "no longer wanted when sent"},
        )
        return SystemMailResult(status=DeliveryStatus.CANCELLED)
    subject, body = content
    if not _claim(delivery_id):
        return SystemMailResult(status="claimed elsewhere")
    attempt = Delivery.objects.filter(pk=delivery_id).values_list("attempt", flat=True).get()
    sender = channel_sender(Channel.EMAIL)
    outcomes: list[Outcome] = sender.send_batch(
        content=_content(delivery=delivery, subject=subject, body=body),
        messages=[OutboundMessage(delivery_id=delivery_id, to=delivery.address)],
    )
    return _record(delivery_id=delivery_id, outcome=outcomes[0], attempt=attempt)


def _record(*, delivery_id: int, outcome: Outcome, attempt: int) -> SystemMailResult:
    if isinstance(outcome, Sent):
        deliveries_mark_sent(
            provider_ids={delivery_id: outcome.provider_message_id},
            provider=outcome.provider,
            cost_units={delivery_id: outcome.cost_units},
        )
        logger.info("system mail %s sent", delivery_id)
        return SystemMailResult(status=DeliveryStatus.SENT)
    if isinstance(outcome, Deferred) and attempt < settings.DELIVERY_MAX_ATTEMPTS:
        delay = _backoff_s(attempt=attempt, asked_s=outcome.retry_after_s)
        deliveries_retry_later(
            ids=[delivery_id],
            not_before=timezone.now() + timedelta(seconds=delay),
            error_code=outcome.code,
            error_text=outcome.text,
        )
        logger.warning(
            "system mail %s deferred (%s): retry in %.1fs", delivery_id, outcome.code, delay
        )
        return SystemMailResult(status=DeliveryStatus.QUEUED, retry_after_s=delay)
    if isinstance(outcome, Unknown):
        target, code, text = DeliveryStatus.UNKNOWN, outcome.code, outcome.text
    elif isinstance(outcome, Deferred):
        target, code = DeliveryStatus.FAILED, outcome.code
        text = f"gave up after {attempt} attempts: {outcome.text}"
    else:
        # Failed for good (or, never from SendGrid, suppressed): the row says why.
        target, code, text = DeliveryStatus.FAILED, outcome.code, outcome.text
    deliveries_transition(
        ids=[delivery_id],
        target=target,
        detail=f"{code}: {text}",
        fields={"error_code": code[:50], "error_text": text[:500]},
    )
    logger.warning("system mail %s %s (%s)", delivery_id, target, code)
    return SystemMailResult(status=target)


def system_mails_sweep(*, send: Callable[..., bool] | None = None) -> int:
    """Queued system mails whose task was lost (broker down at commit, Redis lost) or whose
    retry is due and was not picked up: enqueued again. A duplicate task finds nothing to claim."""
    enqueue = send or system_mail_enqueue
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DELIVERY_QUEUED_STALE_S)
    ids = list(
        Delivery.objects.filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now),
            message__isnull=True,
            status=DeliveryStatus.QUEUED,
            updated_at__lt=stale,
        ).values_list("id", flat=True)[: settings.DELIVERY_SWEEP_BATCH]
    )
    return sum(1 for delivery_id in ids if enqueue(delivery_id=delivery_id))
