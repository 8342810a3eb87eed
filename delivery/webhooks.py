"""Provider webhooks: keep a receipt, verify and parse, apply, answer. Nothing slow in here.

Every request is stored before it is looked at, rejected ones included, so a wrong key or a
forged call is visible afterwards. Answers: 4xx with the reason for what we refuse; 200 for what
we accepted, including events about a message we do not know yet (the provider must stop
retrying: the receipt keeps them for the sweeper's re-apply).

Workspaces with their own provider accounts get URLs of their own (``.../<workspace id>/``):
Twilio signs the full URL with the account's auth token and SendGrid signs with the account's
event-webhook key, so the URL says which workspace's secret verifies the request, and a valid
signature authenticates the workspace too. (Routing by the message a callback names instead
would need the message's row before anything is verified, and a callback that overtakes the
send's own bookkeeping would name no row to route by.) A verified request on a workspace's URL
that names a message another workspace sent is refused.

On a workspace's Twilio URLs the install's account is accepted too, picked by the AccountSid the
request names: messages sent through the install's account before the workspace brought its own
still get their callbacks (the install's token is the operator's, who holds the keys anyway).
The install-wide URLs stay for callbacks of messages sent before per-workspace URLs existed, and
for the install's own SendGrid account, whose event webhook is configured once per account.

Two more accounts are the install's alone, with one URL each: the failover ESP (a SendGrid
account of its own; each email route reports only on its own account's mail, so neither can
settle or suppress through the other's) and the WhatsApp Cloud API app (one Meta app secret).
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from functools import reduce

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from contacts.models import Channel
from continuity.inputs import body_storable, text_storable
from delivery.credentials import WebhookSecrets, webhook_secrets, workspaces_texting_from
from delivery.models import Delivery, ProviderReceipt, ReceiptVerdict
from delivery.privacy import receipt_redact_if_erased
from delivery.provider_events import (
    FAILOVER,
    StatusEvent,
    TwilioVerifier,
    WebhookRejected,
    failover_events_parse,
    sendgrid_events_parse,
    twilio_inbound_read,
    twilio_status_parse,
    whatsapp_statuses_parse,
    whatsapp_subscription_verify,
)
from delivery.receipt_caps import receipt_refused_trim
from delivery.sms_keywords import inbound_keyword_apply
from delivery.status import (
    receipt_workspace_settle,
    status_event_to_json,
    status_events_apply,
)

logger = logging.getLogger(__name__)

KEPT_HEADERS = (
    "Content-Type",
    "Content-Length",
    "User-Agent",
    "X-Forwarded-For",
    "X-Twilio-Signature",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "I-Twilio-Idempotency-Token",
    "X-Hub-Signature-256",
)


def _body_read(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is over DATA_UPLOAD_MAX_MEMORY_SIZE (Django will not buffer
    it, and says so again on every access): kept without its body, answered 413."""
    try:
        return request.body
    except RequestDataTooBig:
        return None


def receipt_open(*, request: HttpRequest, provider: str, kind: str) -> ProviderReceipt:
    """Store the request as it came, before anything can go wrong with it."""
    # Whatever the bytes hold (NUL, invalid UTF-8, a hostile header), the receipt must store:
    # text_storable/body_storable make it PostgreSQL-safe, so a hostile body is kept and refused
    # with a 4xx instead of failing the INSERT with a 500.
    raw = _body_read(request)
    body, truncated = body_storable(raw=raw or b"", cap=settings.DELIVERY_RECEIPT_BODY_MAX)
    headers = {
        name: text_storable(request.headers[name][:500])
        for name in KEPT_HEADERS
        if name in request.headers
    }
    headers["Remote-Addr"] = request.META.get("REMOTE_ADDR", "")
    return ProviderReceipt.objects.create(
        provider=provider,
        kind=kind,
        headers=headers,
        body=body,
        body_truncated=truncated or raw is None,
    )


def _close(
    receipt: ProviderReceipt,
    *,
    verdict: str,
    status_code: int = 200,
    reason: str = "",
    matched: int = 0,
    pending: list[dict[str, object]] | None = None,
) -> None:
    receipt.verdict = verdict
    receipt.status_code = status_code
    receipt.reason = text_storable(reason[:500])  # reasons may quote the request
    receipt.matched = matched
    receipt.pending = pending or []
    receipt.save(update_fields=["verdict", "status_code", "reason", "matched", "pending"])


def _rejected(receipt: ProviderReceipt, exc: WebhookRejected) -> HttpResponse:
    _close(receipt, verdict=ReceiptVerdict.REJECTED, status_code=exc.status_code, reason=str(exc))
    receipt_refused_trim(receipt=receipt)  # anyone can send these: a refused body stays small
    logger.warning("%s %s webhook rejected: %s", receipt.provider, receipt.kind, exc)
    return JsonResponse({"error": exc.code, "detail": str(exc)}, status=exc.status_code)


def _apply_status(receipt: ProviderReceipt, events: list[StatusEvent]) -> None:
    try:
        result = status_events_apply(events=events)
    except Exception:
        # Accepted but not applied (a database hiccup): the provider's retry would be refused as
        # a replay, so the events wait on the receipt for the sweeper's re-apply instead.
        logger.exception("applying %s events failed; kept for re-apply", receipt.provider)
        _close(
            receipt,
            verdict=ReceiptVerdict.UNMATCHED,
            reason="apply failed; kept for re-apply",
            pending=[status_event_to_json(e) for e in events],
        )
        return
    if result.pending:
        verdict = ReceiptVerdict.UNMATCHED
        reason = f"{len(result.pending)} event(s) name no known message yet"
    elif events:
        verdict, reason = ReceiptVerdict.APPLIED, f"{result.moved} status change(s)"
    else:
        verdict, reason = ReceiptVerdict.IGNORED, "no events"
    _close(receipt, verdict=verdict, reason=reason, matched=result.matched, pending=result.pending)
    receipt_workspace_settle(receipt=receipt, result=result)


def _secrets(workspace_id: int | None) -> WebhookSecrets:
    found = webhook_secrets(workspace_id=workspace_id)
    if found is None:
        raise WebhookRejected("no such workspace", status_code=404)
    return found


def _scope_check(
    *, channel: str, message_ids: set[str], workspace_id: int | None, others: Q | None = None
) -> None:
    """Refuse a request verified for one workspace (or one account) that reports on another's
    messages. ``others``: the rows another account sent, besides other workspaces'."""
    message_ids.discard("")
    conditions = [others] if others is not None else []
    if workspace_id is not None:
        conditions.append(~Q(workspace_id=workspace_id))
    if not message_ids or not conditions:
        return
    foreign = (
        Delivery.objects.filter(channel=channel, provider_message_id__in=list(message_ids))
        .filter(reduce(operator.or_, conditions))
        .exists()
    )
    if foreign:
        raise WebhookRejected(
            "the request reports on messages that another account sent",
            status_code=403,
        )


Handler = Callable[[HttpRequest, ProviderReceipt, "int | None"], HttpResponse]


def _erased_redact(receipt: ProviderReceipt) -> None:
    """A report about an erased person keeps no payload (#19); never the cause of a 5xx."""
    try:
        receipt_redact_if_erased(receipt=receipt)
    except Exception:  # the events were applied; the redaction is retried by the next erasure
        logger.exception("receipt %s: erased-contact check failed", receipt.pk)


def _webhook(provider: str, kind: str) -> Callable[[Handler], Callable[..., HttpResponse]]:
    def wrap(handle: Handler) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @require_POST
        def view(request: HttpRequest, workspace_id: int | None = None) -> HttpResponse:
            receipt = receipt_open(request=request, provider=provider, kind=kind)
            try:
                if _body_read(request) is None:
                    raise RequestDataTooBig
                response = handle(request, receipt, workspace_id)
                _erased_redact(receipt)
                return response
            except WebhookRejected as exc:
                return _rejected(receipt, exc)
            except RequestDataTooBig:
                too_big = WebhookRejected("body over DATA_UPLOAD_MAX_MEMORY_SIZE", status_code=413)
                return _rejected(receipt, too_big)
            except SuspiciousOperation as exc:
                # Too many form fields (DATA_UPLOAD_MAX_NUMBER_FIELDS) and the like: Django
                # would answer 400 too, but the receipt would keep no verdict or reason.
                return _rejected(receipt, WebhookRejected(f"malformed request: {exc}"))

        view.__name__ = handle.__name__
        view.__doc__ = handle.__doc__
        return view

    return wrap


@_webhook("sendgrid", "events")
def sendgrid_events(
    request: HttpRequest, receipt: ProviderReceipt, workspace_id: int | None
) -> HttpResponse:
    """SendGrid's signed event webhook (delivered, open, click, bounce, dropped, spamreport...)."""
    secrets = _secrets(workspace_id)
    if secrets.sendgrid_refusal:
        raise WebhookRejected(secrets.sendgrid_refusal, status_code=403)
    events = sendgrid_events_parse(
        request=request, verification_key=secrets.sendgrid_verification_key
    )
    _scope_check(
        channel=Channel.EMAIL,
        message_ids={e.message_id for e in events},
        workspace_id=workspace_id,
        # Mail the failover ESP took is reported by the failover's own webhook.
        others=Q(provider=FAILOVER),
    )
    _apply_status(receipt, events)
    return HttpResponse(status=200)


@_webhook(FAILOVER, "events")
def failover_events(
    request: HttpRequest, receipt: ProviderReceipt, workspace_id: int | None
) -> HttpResponse:
    """The failover ESP's signed event webhook (a SendGrid account of its own, install-wide):
    the same events, bounces and complaints as SendGrid's, verified with its own key, about the
    mail it took and no other."""
    events = failover_events_parse(request=request)
    _scope_check(
        channel=Channel.EMAIL,
        message_ids={e.message_id for e in events},
        workspace_id=workspace_id,
        # A row with a provider recorded that is not the failover was sent by another account.
        others=~Q(provider=FAILOVER) & ~Q(provider=""),
    )
    _apply_status(receipt, events)
    return HttpResponse(status=200)


def _twilio_accounts(workspace_id: int | None) -> list[TwilioVerifier]:
    # Never an empty list: the parsers read that as "the install's account".
    secrets = _secrets(workspace_id)
    if secrets.twilio_refusal:
        raise WebhookRejected(secrets.twilio_refusal, status_code=403)
    accounts = [TwilioVerifier(secrets.twilio_account_sid, secrets.twilio_auth_token)]
    if secrets.own_twilio:
        install = _secrets(None)
        # An install without a usable token of its own just has no callbacks to accept here.
        if not install.twilio_refusal:
            accounts.append(TwilioVerifier(install.twilio_account_sid, install.twilio_auth_token))
    return accounts


@_webhook("twilio", "status")
def twilio_status(
    request: HttpRequest, receipt: ProviderReceipt, workspace_id: int | None
) -> HttpResponse:
    """Twilio's StatusCallback for a message we sent."""
    event = twilio_status_parse(request=request, accounts=_twilio_accounts(workspace_id))
    _scope_check(
        channel=Channel.SMS,
        message_ids={event.message_id},
        workspace_id=workspace_id,
    )
    _apply_status(receipt, [event])
    return HttpResponse(status=200)


@_webhook("twilio", "inbound")
def twilio_inbound(
    request: HttpRequest, receipt: ProviderReceipt, workspace_id: int | None
) -> HttpResponse:
    """An SMS to one of our numbers: Twilio's keywords and the workspace's own (ANNULLA...)
    change or explain SMS consent; the answer, where we send one, is in the contact's language."""
    inbound = twilio_inbound_read(request=request, accounts=_twilio_accounts(workspace_id))
    twiml = MessagingResponse()
    result = inbound_keyword_apply(
        inbound=inbound,
        workspace_ids=workspaces_texting_from(
            account_sid=inbound.raw.get("AccountSid", ""), workspace_id=workspace_id
        ),
    )
    if result.workspace_id is not None:
        # The receipt is the client's evidence of the opt-out: it goes with their data.
        receipt.workspace_id = result.workspace_id
        receipt.save(update_fields=["workspace"])
    _close(receipt, verdict=result.verdict, reason=result.reason, matched=result.matched)
    if result.reply:
        twiml.message(result.reply)
    return HttpResponse(str(twiml), content_type="text/xml")


@_webhook("whatsapp", "status")
def _whatsapp_statuses(
    request: HttpRequest, receipt: ProviderReceipt, workspace_id: int | None
) -> HttpResponse:
    events = whatsapp_statuses_parse(request=request)
    _apply_status(receipt, events)
    return HttpResponse(status=200)


@csrf_exempt
def whatsapp_events(request: HttpRequest) -> HttpResponse:
    """The WhatsApp Cloud API webhook: Meta's subscription handshake (GET) and signed
    notifications (POST) whose message statuses (sent, delivered, read, failed) settle the
    WhatsApp deliveries they name. Install-wide: one Meta app, one secret."""
    if request.method == "GET":
        try:
            challenge = whatsapp_subscription_verify(request=request)
        except WebhookRejected as exc:
            return JsonResponse({"error": exc.code, "detail": str(exc)}, status=exc.status_code)
        return HttpResponse(challenge, content_type="text/plain")
    return _whatsapp_statuses(request)
