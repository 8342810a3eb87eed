"""Which sender and which content serve a channel: the one place dispatch meets the providers.

Senders are built once per worker process and reused, so HTTP connections (and the SMS pace) are
shared by every chunk that process sends.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from contacts.models import Channel
from delivery.models import Message
from delivery.providers.base import EmailContent, PushContent, SmsContent
from delivery.providers.whatsapp import WhatsAppContent


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
    *, message: Message, channel: str
) -> EmailContent | SmsContent | PushContent | WhatsAppContent:
    if channel == Channel.EMAIL:
        return EmailContent(
            subject=message.email_subject, html=message.email_html, text=message.email_text
        )
    if channel == Channel.SMS:
        return SmsContent(text=message.sms_text)
    if channel == Channel.PUSH:
        return PushContent(
            title=message.push_title,
            body=message.push_body,
            url=message.push_url,
            icon=message.push_icon,
            # One topic per message: a second copy of the same message replaces the first
            # on the push service instead of showing twice.
            topic=f"m{message.pk}",
        )
    if channel == Channel.WHATSAPP:
        return WhatsAppContent(
            template=message.whatsapp_template,
            language=message.whatsapp_language or "en",
            account=_whatsapp_account_for(message.pk),
        )
    raise LookupError(f"no content for channel {channel!r}")
