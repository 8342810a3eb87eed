"""Email through django-anymail's SendGrid backend: batched, merged, with failover.

One API request carries up to ``DELIVERY_EMAIL_BATCH_SIZE`` (<= 1,000) recipients, each its own
personalization with its merge data, its List-Unsubscribe headers and its own ``anymail_id`` (the
id SendGrid's events echo back, kept as the provider message id). The subject, HTML and text are
marketer templates (delivery.templating) rendered ONCE per batch with SendGrid substitution tags
in place of the merge fields (``-first_name-`` in text, ``-first_name__html-`` in HTML, whose
value is HTML-escaped), so a 1,000-recipient batch costs one render and one request. Merge fields
therefore arrive verbatim: a template filter applied to a merge field would act on the tag, not
the value. A template that does not compile fails the batch's deliveries with its reason.

Errors, sorted per recipient:
- 400 naming ``personalizations.N...email``: that recipient failed for good; the rest are resent.
- other 4xx (bad credentials, malformed request): the whole request failed; 401/403 first try the
  failover ESP, since another account may still work.
- 429: deferred with SendGrid's Retry-After.
- 5xx, connection refused, connect timeout: SendGrid did not take the mail. With a failover ESP
  configured, this request and every later one of the batch go there; otherwise deferred.
- read timeout or a connection dropped after the request was written: SendGrid may have accepted
  it, so the recipients become unknown (unless DELIVERY_EMAIL_FAILOVER_ON_READ_TIMEOUT).

Progress is reported per request (``delivery/providers/progress.py``): its recipients are recorded
as leaving right before it is made and their answers right after, so a worker lost mid-batch
leaves at most one request's recipients `unknown`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailRequestsAPIError
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.html import escape
from django.utils.safestring import mark_safe

from delivery.providers.base import (
    Deferred,
    EmailContent,
    Failed,
    OutboundMessage,
    Outcome,
    Sent,
    Unknown,
    outcomes_credentials_unreadable,
)
from delivery.providers.progress import CLAIM_LOST, CLAIM_LOST_TEXT, NO_PROGRESS, SendProgress
from delivery.templating import (
    TEMPLATE_INVALID,
    MarketerTemplateError,
    marketer_template_compile,
    marketer_template_render,
)
from delivery.transport import request_never_left

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CULPRIT = re.compile(r"^personalizations\.(\d+)\.(?:to|cc|bcc)\.\d+\.email$")
HTML_SUFFIX = "__html"


def _tag(name: str) -> str:
    return str(settings.ANYMAIL.get("SENDGRID_MERGE_FIELD_FORMAT", "-{}-")).format(name)


def merge_field_names(fields: Iterable[str]) -> list[str]:
    """The merge fields a template can name, and so the only ones given substitution tags.
    Other names (attribute keys saved before contacts.attribute_keys, such as ``a-b``) cannot
    be written as ``{{ ... }}``, and a tag built from them (``-a-b-``, or ``--`` for "") could
    match ordinary text of the mail."""
    # No "__" either: "x__html" is the tag of x's escaped value.
    return sorted(n for n in set(fields) if _FIELD_NAME.fullmatch(n) and "__" not in n)


def email_content_render(*, content: EmailContent, fields: Iterable[str]) -> tuple[str, str, str]:
    """Subject, HTML and text with substitution tags where the merge fields go.

    Raises MarketerTemplateError when a part is not a valid marketer template."""
    names = merge_field_names(fields)
    text_context = {name: mark_safe(_tag(name)) for name in names}  # noqa: S308 - a fixed tag  # nosec
    html_context = {name: mark_safe(_tag(name + HTML_SUFFIX)) for name in names}  # noqa: S308  # nosec
    subject = marketer_template_compile(content.subject)
    text = marketer_template_compile(content.text)
    html = marketer_template_compile(content.html)
    # Text parts are not HTML: no autoescaping, so "&" stays "&".
    return (
        " ".join(marketer_template_render(subject, text_context, autoescape=False).split()),
        marketer_template_render(html, html_context, autoescape=True),
        marketer_template_render(text, text_context, autoescape=False),
    )


def sendgrid_connection(
    *, api_url: str | None = None, api_key: str | None = None, timeout_s: float | None = None
) -> BaseEmailBackend:
    """A DELIVERY_EMAIL_BACKEND connection; unset arguments come from the ANYMAIL settings."""
    options: dict[str, Any] = {}
    if api_url is not None:
        options["api_url"] = api_url
    if api_key is not None:
        options["api_key"] = api_key
    if timeout_s is not None:
        options["timeout"] = timeout_s
    return get_connection(settings.DELIVERY_EMAIL_BACKEND, **options)


def _chunks(messages: Sequence[OutboundMessage], size: int) -> list[list[OutboundMessage]]:
    """Requests of at most ``size`` recipients, none holding the same address twice."""
    chunks: list[list[OutboundMessage]] = []
    seen: list[set[str]] = []
    for message in messages:
        address = message.to.strip().lower()
        for chunk, addresses in zip(chunks, seen, strict=True):
            if len(chunk) < size and address not in addresses:
                chunk.append(message)
                addresses.add(address)
                break
        else:
            chunks.append([message])
            seen.append({address})
    return chunks


class SendGridEmailSender:
    """The email channel. Connections come from settings unless given (tests, benchmarks)."""

    channel = "email"
    provider = "sendgrid"
    # send_batch takes a SendProgress and reports each request as it goes.
    reports_progress = True

    def __init__(
        self,
        *,
        connection: BaseEmailBackend | None = None,
        failover_connection: BaseEmailBackend | None = None,
        batch_size: int | None = None,
        from_email: str | None = None,
        reply_to: Sequence[str] | None = None,
        failover_on_read_timeout: bool | None = None,
    ) -> None:
        self.connection = connection or get_connection(settings.DELIVERY_EMAIL_BACKEND)
        if failover_connection is None and settings.DELIVERY_EMAIL_FAILOVER_BACKEND:
            options: dict[str, Any] = dict(settings.DELIVERY_EMAIL_FAILOVER_OPTIONS)
            backend = settings.DELIVERY_EMAIL_FAILOVER_BACKEND
            failover_connection = get_connection(backend, **options)
        self.failover_connection = failover_connection
        self.batch_size = min(batch_size or settings.DELIVERY_EMAIL_BATCH_SIZE, 1000)
        self.from_email = from_email or settings.DELIVERY_EMAIL_FROM
        self.reply_to = list(reply_to if reply_to is not None else settings.DELIVERY_EMAIL_REPLY_TO)
        self.failover_on_read_timeout = (
            settings.DELIVERY_EMAIL_FAILOVER_ON_READ_TIMEOUT
            if failover_on_read_timeout is None
            else failover_on_read_timeout
        )

    def send_batch(
        self,
        *,
        content: EmailContent,
        messages: Sequence[OutboundMessage],
        progress: SendProgress | None = None,
    ) -> list[Outcome]:
        if content.credentials_error:
            return outcomes_credentials_unreadable(messages, content.credentials_error)
        fields = {name for message in messages for name in message.merge_fields}
        try:
            rendered = email_content_render(content=content, fields=fields)
        except MarketerTemplateError as exc:
            # A template saved before the rules: nothing can be sent until it is fixed.
            return [Failed(m.delivery_id, TEMPLATE_INVALID, str(exc)[:500]) for m in messages]
        outcomes: dict[int, Outcome] = {}
        use_failover = False
        main = self.connection
        if content.account is not None:
            # The workspace's own SendGrid account, for this batch only: the install
            # connection's backend, URL and timeout, the workspace's key.
            main = sendgrid_connection(
                api_url=getattr(self.connection, "api_url", None),
                api_key=content.account.api_key,
                timeout_s=getattr(self.connection, "timeout", None),
            )
        connections = [c for c in (main, self.failover_connection) if c is not None]
        progress = progress or NO_PROGRESS
        for connection in connections:
            connection.open()
        try:
            for batch in _chunks(messages, self.batch_size):
                ours = set(progress.leaving([m.delivery_id for m in batch]))
                chunk = [m for m in batch if m.delivery_id in ours]
                for m in batch:
                    if m.delivery_id not in ours:
                        outcomes[m.delivery_id] = Deferred(
                            m.delivery_id, CLAIM_LOST, CLAIM_LOST_TEXT
                        )
                pending: list[OutboundMessage] | None = chunk
                if chunk and not use_failover:
                    pending = self._send_chunk(
                        main, content, rendered, chunk, outcomes, primary=True
                    )
                    # Not None: SendGrid is down, so this chunk and every later one fail over.
                    use_failover = pending is not None
                if pending and self.failover_connection is not None:
                    self._send_chunk(
                        self.failover_connection, content, rendered, pending, outcomes,
                        primary=False,
                    )  # fmt: skip
                progress.settled([outcomes[m.delivery_id] for m in batch])
        finally:
            for connection in connections:
                connection.close()
        return [outcomes[m.delivery_id] for m in messages]

    def _send_chunk(
        self,
        connection: BaseEmailBackend,
        content: EmailContent,
        rendered: tuple[str, str, str],
        chunk: list[OutboundMessage],
        outcomes: dict[int, Outcome],
        *,
        primary: bool,
    ) -> list[OutboundMessage] | None:
        """Send one request, resending without culprits; returns the chunk to fail over, if any."""
        provider = self.provider if primary else "failover"
        remaining = list(chunk)
        while remaining:
            message = self._message(connection, content, rendered, remaining)
            try:
                message.send()
            except AnymailAPIError as exc:
                culprits = self._culprits(exc, remaining)
                if culprits:
                    for index, (code, text) in culprits.items():
                        outcomes[remaining[index].delivery_id] = Failed(
                            remaining[index].delivery_id, code, text
                        )
                    remaining = [m for i, m in enumerate(remaining) if i not in culprits]
                    continue
                if (
                    primary
                    and self.failover_connection is not None
                    and self._fails_over(exc, own_account=content.account is not None)
                ):
                    return remaining
                for m in remaining:
                    outcomes[m.delivery_id] = self._outcome_for(exc, m.delivery_id)
                return None
            recipients = message.anymail_status.recipients
            for m in remaining:
                status = recipients.get(m.to)
                message_id = status.message_id if status is not None else None
                outcomes[m.delivery_id] = Sent(m.delivery_id, str(message_id or ""), provider)
            return None
        return None

    def _message(
        self,
        connection: BaseEmailBackend,
        content: EmailContent,
        rendered: tuple[str, str, str],
        chunk: list[OutboundMessage],
    ) -> AnymailMessage:
        subject, html, text = rendered
        message = AnymailMessage(
            subject=subject,
            body=text,
            from_email=content.from_email or self.from_email,
            to=[m.to for m in chunk],
            reply_to=list(content.reply_to or self.reply_to),
            connection=connection,
        )
        message.attach_alternative(html, "text/html")
        fields = merge_field_names(name for m in chunk for name in m.merge_fields)
        message.merge_data = {
            m.to: {
                **{name: str(m.merge_fields.get(name, "")) for name in fields},
                **{name + HTML_SUFFIX: escape(m.merge_fields.get(name, "")) for name in fields},
            }
            for m in chunk
        }
        message.merge_headers = {m.to: self._headers(m) for m in chunk}
        message.merge_metadata = {m.to: {"delivery_id": str(m.delivery_id)} for m in chunk}
        if content.tags:
            message.tags = list(content.tags)
        return message

    @staticmethod
    def _headers(message: OutboundMessage) -> dict[str, str]:
        headers = dict(message.headers)
        if message.unsubscribe_url:
            # RFC 8058 one-click: mailbox providers POST "List-Unsubscribe=One-Click" to the URL.
            headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return headers

    @staticmethod
    def _culprits(exc: AnymailAPIError, chunk: list[OutboundMessage]) -> dict[int, tuple[str, str]]:
        """Recipients a 400 names (``personalizations.N.to.0.email``), by index in the chunk."""
        if exc.status_code != 400 or not isinstance(exc, AnymailRequestsAPIError):
            return {}
        try:
            errors: list[dict[str, Any]] = exc.response.json().get("errors") or []
        except (ValueError, AttributeError):
            return {}
        culprits: dict[int, tuple[str, str]] = {}
        for error in errors:
            match = _CULPRIT.match(str(error.get("field") or ""))
            if match and int(match[1]) < len(chunk):
                culprits[int(match[1])] = ("sendgrid_400", str(error.get("message") or ""))
        return culprits

    def _fails_over(self, exc: AnymailAPIError, *, own_account: bool = False) -> bool:
        status = exc.status_code
        if status is not None:
            # A workspace's own key refused is the workspace's to fix: failing over would send
            # its mail from the install's failover account, under another sender's name.
            return status >= 500 or (status in (401, 403) and not own_account)
        cause = exc.__cause__
        return cause is not None and (request_never_left(cause) or self.failover_on_read_timeout)

    @staticmethod
    def _outcome_for(exc: AnymailAPIError, delivery_id: int) -> Outcome:
        status = exc.status_code
        text = _describe(exc)
        if status is None:
            cause = exc.__cause__
            if cause is not None and request_never_left(cause):
                return Deferred(delivery_id, "sendgrid_unreachable", text)
            return Unknown(delivery_id, "sendgrid_no_answer", text)
        if status == 429:
            response = getattr(exc, "response", None)
            retry_after = _retry_after(response.headers if response is not None else {})
            return Deferred(delivery_id, "sendgrid_429", text, retry_after)
        if status >= 500:
            return Deferred(delivery_id, f"sendgrid_{status}", text)
        return Failed(delivery_id, f"sendgrid_{status}", text)


def _retry_after(headers: Any, default: float = 30.0) -> float:
    try:
        return max(0.0, float(headers.get("Retry-After", default)))
    except (TypeError, ValueError):
        return default


def _describe(exc: AnymailAPIError) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            errors = response.json().get("errors") or []
            return "; ".join(str(e.get("message")) for e in errors)[:500] or response.text[:500]
        except (ValueError, AttributeError):
            return str(response.text)[:500]
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}"[:500] if cause else str(exc)[:500]
