"""Which sender and which content serve a channel: the one place dispatch meets the providers.

Senders are built once per worker process and reused, so HTTP connections (and the SMS pace) are
shared by every chunk that process sends. Whose account sends is decided per batch: the content
of a message carries its workspace's own credentials (delivery/credentials.py), read and
decrypted once for that batch and dropped with it; a batch is one message's deliveries, so it
never mixes two workspaces' accounts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from contacts.models import Channel
from delivery.credentials import (
    CredentialsUnreadable,
    credentials_row,
    email_from,
    sendgrid_account,
    twilio_account,
    vapid_keys,
    whatsapp_number,
)
from delivery.models import Message, MessageVariant, WorkspaceCredentials
from delivery.providers.base import EmailContent, PushContent, SmsContent
from delivery.providers.whatsapp import WhatsAppContent
from delivery.publishers.base import WHATSAPP, SocialAccountRef
from delivery.variants import MessageLanguages


@cache
def channel_sender(channel: str) -> Any:
    if channel == Channel.EMAIL:
        from delivery.providers.sendgrid_email import SendGridEmailSender

        return SendGridEmailSender()
    if channel == Channel.SMS:
        from delivery.providers.twilio_sms import TwilioSmsSender

        return TwilioSmsSender()
    if channel == Channel.PUSH:
        from delivery.providers.webpush import WebPushSender

        return WebPushSender()
    if channel == Channel.WHATSAPP:
        from delivery.providers.whatsapp import WhatsAppSender

        return WhatsAppSender()
    raise LookupError(f"no sender for channel {channel!r}")


def _whatsapp_account_for(message_id: int) -> Any:
    """The WhatsApp number a message is sent from, asked of whoever owns the message.

    delivery never imports campaigns: the campaign app names its resolver in the setting
    DELIVERY_WHATSAPP_ACCOUNT_RESOLVER (a dotted path), as outages does for its impact counter.
    """
    path = settings.DELIVERY_WHATSAPP_ACCOUNT_RESOLVER
    return import_string(path)(message_id=message_id) if path else None


def channel_content(
    *,
    message: Message,
    channel: str,
    language: str = "",
    languages: MessageLanguages | None = None,
) -> EmailContent | SmsContent | PushContent | WhatsAppContent:
    """The message's content for one channel in one content language (delivery/variants.py:
    its variant, else the default language's, else the base), with its workspace's credentials
    for this batch. Without ``languages`` the base content."""
    source: Message | MessageVariant = (
        languages.source(language=language, channel=channel) if languages else message
    )
    row = credentials_row(workspace_id=message.workspace_id)
    try:
        return _content(message=message, source=source, channel=channel, row=row)
    except CredentialsUnreadable as exc:
        # The senders answer every recipient "failed: credentials_unreadable" and send nothing.
        return _content(message=message, source=source, channel=channel, row=None, error=str(exc))


def _content(
    *,
    message: Message,
    source: Message | MessageVariant,
    channel: str,
    row: WorkspaceCredentials | None,
    error: str = "",
) -> EmailContent | SmsContent | PushContent | WhatsAppContent:
    if channel == Channel.EMAIL:
        return EmailContent(
            subject=source.email_subject,
            html=source.email_html,
            text=source.email_text,
            from_email=email_from(row),
            account=sendgrid_account(row),
            credentials_error=error,
        )
    if channel == Channel.SMS:
        return SmsContent(
            text=source.sms_text,
            account=twilio_account(row),
            workspace_id=message.workspace_id,
            credentials_error=error,
        )
    if channel == Channel.PUSH:
        return PushContent(
            title=source.push_title,
            body=source.push_body,
            url=source.push_url,
            icon=source.push_icon,
            # One topic per message: a second copy of the same message replaces the first
            # on the push service instead of showing twice.
            topic=f"m{message.pk}",
            vapid=vapid_keys(row),
            credentials_error=error,
        )
    if channel == Channel.WHATSAPP:
        # The campaign's own WhatsApp account first, then the workspace's number, then the
        # install's settings (WhatsAppSender's default).
        account = _whatsapp_account_for(message.pk)
        if account is None and (number := whatsapp_number(row)) is not None:
            account = SocialAccountRef(
                network=WHATSAPP, access_token=number[1], phone_number_id=number[0]
            )
        return WhatsAppContent(
            template=message.whatsapp_template,
            language=source.whatsapp_language or message.whatsapp_language or "en",
            account=account,
            credentials_error=error,
        )
    raise LookupError(f"no content for channel {channel!r}")
