"""SMS through the twilio library, paced by the global Redis bucket.

Twilio's create is not idempotent: a request that may have reached Twilio is never sent again.
What is safe to repeat, and is repeated here with back-off and jitter up to
``DELIVERY_SMS_MAX_ATTEMPTS``: 20429/429 (throttled), 20503/503 (service unavailable) and failures
before the request left (connection refused, connect timeout). Everything else is final for this
attempt:

- 21610 (the recipient replied STOP): suppressed, opted out (the caller revokes SMS consent);
- 21211 (invalid To) and 21614 (not a mobile number): suppressed, invalid number;
- a read timeout, a dropped connection or another 5xx (Twilio's 20500 page warns a retry can
  double-send): unknown;
- other 4xx, bad credentials included: failed.

A chunk is paced, so it can take minutes: each message is checked against its recipient's quiet
hours (``OutboundMessage.hold_from``) after its slot is reached and again right before its request
is written. Past that instant it is handed back as ``Deferred`` with code ``quiet_hours`` and no
request is made.

Each attempt first takes a slot from the shared pace, so retries count against the rate too.

Progress is reported per message (``delivery/providers/progress.py``): right before a request is
written (after its slot and the quiet-hours look) the row is recorded as leaving, and its answer is
recorded as soon as it is known. A worker killed mid-chunk therefore leaves at most the one request
it was making as `unknown`; the rows it never reached go back to the queue. When the pace (Redis)
or the progress record (PostgreSQL) fails before a request leaves, the chunk stops there
(``SendInterrupted``) and its caller requeues the rest.

A request starts no later than ``DELIVERY_SMS_LEAVE_MAX_S`` after its "leaving" record: past that
(a process frozen or starved between the two) it is not made at all and the row is deferred. That
bound is what lets reconciliation (delivery/reconcile.py, through ``twilio_messages_to``) conclude
that a request never left once Twilio lists nothing long enough after the claim's death.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import requests
from django.conf import settings
from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from delivery.merge import merge_template_compile
from delivery.providers._http import backoff_s
from delivery.providers.base import (
    Deferred,
    Failed,
    OutboundMessage,
    Outcome,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderPermanent,
    ProviderRetryable,
    ProviderThrottled,
    Sent,
    SmsContent,
    Suppressed,
    SuppressReason,
    TwilioAccount,
    outcome_for_error,
    outcomes_credentials_unreadable,
)
from delivery.providers.progress import (
    CLAIM_LOST,
    CLAIM_LOST_TEXT,
    NO_PROGRESS,
    SendProgress,
)
from delivery.quiet_hours import QUIET_HOURS_CODE
from delivery.ratelimit import (
    RateLimiter,
    rate_limiter_acquire,
    rate_limiter_commit,
    sms_rate_limiter,
)
from delivery.sms_segments import sms_segments_count
from delivery.templating import TEMPLATE_INVALID, MarketerTemplateError
from delivery.transport import request_never_left

STATUS_CALLBACK_PATH = "/webhooks/twilio/status/"
INBOUND_PATH = "/webhooks/twilio/inbound/"
SUPPRESS_CODES = {
    21610: SuppressReason.OPTED_OUT,
    21211: SuppressReason.INVALID_ADDRESS,
    21614: SuppressReason.INVALID_ADDRESS,
}
RETRYABLE_STATUSES = {429, 503}
RETRYABLE_CODES = {20429, 20503}


class QuietHoursBegan(Exception):
    """The recipient's quiet hours began before the request left: nothing was sent."""


class ClaimLost(Exception):
    """The row is no longer this chunk's to send (the sweeper took it back): nothing was sent."""


class LeaveWindowPassed(Exception):
    """Too long since the request was recorded as leaving: it is not made (nothing was sent)."""


LEAVE_WINDOW_PASSED = "leave_window_passed"


class _PacedAdapter(HTTPAdapter):
    def __init__(
        self,
        *,
        limiter: RateLimiter,
        gate: Callable[[], None],
        leaving: Callable[[], None],
        fence: Callable[[float], None],
    ) -> None:
        super().__init__()
        self.limiter = limiter
        self.gate = gate
        self.leaving = leaving
        self.fence = fence

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.method != "POST":
            # Only a create is paced and recorded; nothing else goes through this session today.
            return super().send(request, *args, **kwargs)
        # The record that this request is leaving (a database write) comes before the pace's
        # commit, so it never widens the stretch from the commit to the provider that the pace's
        # margin covers; only a Redis round trip separates it from the request.
        recorded = time.monotonic()
        self.leaving()
        rate_limiter_commit(limiter=self.limiter)
        # The commit may have waited: the last look at the recipient's clock is here.
        self.gate()
        self.fence(recorded)
        return super().send(request, *args, **kwargs)


class TwilioSuppress(ProviderPermanent):
    code = "provider_suppress"

    def __init__(self, detail: str, *, reason: SuppressReason, provider_code: str) -> None:
        super().__init__(detail, provider_code=provider_code)
        self.reason = reason


def twilio_client(
    *,
    account_sid: str | None = None,
    auth_token: str | None = None,
    base_url: str | None = None,
    timeout_s: float | None = None,
) -> Client:
    """A Twilio client with a timeout (its default has none) and the configured base URL."""
    http_client = TwilioHttpClient(
        timeout=timeout_s if timeout_s is not None else settings.TWILIO_TIMEOUT_S,
        pool_connections=True,
    )
    client = Client(
        account_sid or settings.TWILIO_ACCOUNT_SID,
        auth_token or settings.TWILIO_AUTH_TOKEN,
        http_client=http_client,
    )
    # The api domain object is created once and read on every request, so this one assignment
    # points every Messages call at the sandbox (or a regional/edge URL) without region rewriting.
    client.api.base_url = (base_url or settings.TWILIO_API_BASE_URL).rstrip("/")
    return client


def twilio_status_callback_url(*, workspace_id: int | None = None) -> str:
    """Where Twilio reports on a message. Per workspace, so the callback is verified with that
    workspace's auth token (the signature covers the path, so the workspace is authenticated)."""
    base = settings.DELIVERY_PUBLIC_BASE_URL.rstrip("/") + STATUS_CALLBACK_PATH
    return base if workspace_id is None else f"{base}{workspace_id}/"


def twilio_error_sort(exc: TwilioRestException) -> ProviderError:
    """Twilio's answer as one of our provider errors."""
    code = int(exc.code) if exc.code else 0
    text = f"{exc.status} {code}: {exc.msg}"[:500]
    provider_code = str(code or exc.status)
    if code in SUPPRESS_CODES:
        return TwilioSuppress(text, reason=SUPPRESS_CODES[code], provider_code=provider_code)
    if exc.status == 429 or code == 20429:
        return ProviderThrottled(text, retry_after_s=1.0, provider_code=provider_code)
    if exc.status in RETRYABLE_STATUSES or code in RETRYABLE_CODES:
        return ProviderRetryable(text, provider_code=provider_code)
    if exc.status >= 500:
        return ProviderOutcomeUnknown(text, provider_code=provider_code)
    return ProviderPermanent(text, provider_code=provider_code)


@dataclass
class _Lane:
    """One Twilio account's way out: its client, its pace, and the sender it sends as."""

    client: Client
    limiter: RateLimiter
    messaging_service_sid: str
    from_number: str
    commit_in_adapter: bool


class TwilioSmsSender:
    """The SMS channel: one create per message, paced, with bounded safe retries.

    The install's account (settings, or the client given) is the default lane, built once per
    process. A batch whose content names a workspace's own account gets a lane of its own for
    that batch only (its client, and its own pace: Twilio's throughput is per account and
    sender), so the decrypted token is dropped with the batch.
    """

    channel = "sms"
    provider = "twilio"
    # send_batch takes a SendProgress and reports each request as it goes.
    reports_progress = True

    def __init__(
        self,
        *,
        client: Client | None = None,
        limiter: RateLimiter | None = None,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        status_callback_url: str | None = None,
        max_attempts: int | None = None,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client or twilio_client()
        # An injected pace (tests, benchmarks) is shared by every account's lane.
        self._shared_limiter = limiter
        self.limiter = limiter or sms_rate_limiter()
        self.messaging_service_sid = (
            settings.TWILIO_MESSAGING_SERVICE_SID
            if messaging_service_sid is None
            else messaging_service_sid
        )
        self.from_number = settings.TWILIO_FROM_NUMBER if from_number is None else from_number
        self._fixed_callback_url = status_callback_url
        self.status_callback_url = (
            twilio_status_callback_url() if status_callback_url is None else status_callback_url
        )
        self.max_attempts = max_attempts or settings.DELIVERY_SMS_MAX_ATTEMPTS
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        # The message whose request is being made and where its progress goes, per thread (a
        # sender is shared per process).
        self._current = threading.local()
        self._default = self._lane(
            client=self.client,
            limiter=self.limiter,
            messaging_service_sid=self.messaging_service_sid,
            from_number=self.from_number,
        )

    def _lane(
        self, *, client: Client, limiter: RateLimiter, messaging_service_sid: str, from_number: str
    ) -> _Lane:
        # The pace's commit step runs in the HTTP adapter, right before the request is written,
        # so the twilio library's own work happens before it rather than inside the margin.
        session = getattr(client.http_client, "session", None)
        if isinstance(session, requests.Session):
            adapter = _PacedAdapter(
                limiter=limiter, gate=self._quiet_gate, leaving=self._leaving, fence=_leave_fence
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        return _Lane(
            client=client,
            limiter=limiter,
            messaging_service_sid=messaging_service_sid,
            from_number=from_number,
            commit_in_adapter=isinstance(session, requests.Session),
        )

    def _account_lane(self, account: TwilioAccount) -> _Lane:
        client = twilio_client(
            account_sid=account.account_sid,
            auth_token=account.auth_token,
            base_url=str(self.client.api.base_url),
        )
        # One pace per account: the install's own SID (set again by a workspace) keeps its bucket.
        key = (
            "sms:global"
            if account.account_sid == settings.TWILIO_ACCOUNT_SID
            else f"sms:{account.account_sid}"
        )
        limiter = self._shared_limiter or sms_rate_limiter(key=key)
        # Never the install's sender: its number or service belongs to another account.
        return self._lane(
            client=client,
            limiter=limiter,
            messaging_service_sid=account.messaging_service_sid,
            from_number=account.from_number,
        )

    def send_batch(
        self,
        *,
        content: SmsContent,
        messages: Sequence[OutboundMessage],
        progress: SendProgress | None = None,
    ) -> list[Outcome]:
        if content.credentials_error:
            return outcomes_credentials_unreadable(messages, content.credentials_error)
        lane = self._default if content.account is None else self._account_lane(content.account)
        callback = self.status_callback_url
        if self._fixed_callback_url is None and content.workspace_id is not None:
            callback = twilio_status_callback_url(workspace_id=content.workspace_id)
        self._current.progress = progress or NO_PROGRESS
        try:
            return self._send_all(lane, callback, content, messages)
        finally:
            self._current.progress = NO_PROGRESS
            if lane is not self._default:
                session = getattr(lane.client.http_client, "session", None)
                if isinstance(session, requests.Session):
                    session.close()

    def _send_all(
        self,
        lane: _Lane,
        callback: str,
        content: SmsContent,
        messages: Sequence[OutboundMessage],
    ) -> list[Outcome]:
        try:
            render = merge_template_compile(source=content.text)
        except MarketerTemplateError as exc:
            # A template saved before the rules: fail its deliveries with the reason.
            return [Failed(m.delivery_id, TEMPLATE_INVALID, str(exc)[:500]) for m in messages]
        progress: SendProgress = self._current.progress
        outcomes: list[Outcome] = []
        # Answers that involved no request wait and are recorded with the next one that did.
        unsent: list[Outcome] = []
        paced_out = False
        claim_lost = False
        for message in messages:
            if claim_lost:
                # The chunk's claim was taken back: none of the rest is ours, and taking slots
                # of the shared pace for them would only slow every other sender down.
                unsent.append(Deferred(message.delivery_id, CLAIM_LOST, CLAIM_LOST_TEXT))
                continue
            if _quiet_began(message):
                unsent.append(_quiet_deferred(message))
                continue
            if paced_out:
                # The shared pace is booked further ahead than we may wait: hand the rest back.
                unsent.append(Deferred(message.delivery_id, "rate_limited", "pace is full",
                                       self.max_wait_s))  # fmt: skip
                continue
            try:
                text = sms_opt_out_append(render(message.merge_fields).strip(), message)
            except MarketerTemplateError as exc:
                # No request for it: recorded with the next one that leaves, like a quiet hour.
                unsent.append(Failed(message.delivery_id, TEMPLATE_INVALID, str(exc)[:500]))
                continue
            outcome = self._send_one(lane, callback, message, text)
            paced_out = isinstance(outcome, Deferred) and outcome.code == "rate_limited"
            claim_lost = isinstance(outcome, Deferred) and outcome.code == CLAIM_LOST
            outcomes.extend(unsent)
            outcomes.append(outcome)
            # Written with the next request's "leaving" record, or before any wait for its slot
            # (`_wait`): never left unwritten while this process sits idle or sends again.
            progress.settle_later([*unsent, outcome])
            unsent = []
        outcomes.extend(unsent)
        progress.settle_later(unsent)
        progress.flush()
        order = {m.delivery_id: i for i, m in enumerate(messages)}
        return sorted(outcomes, key=lambda o: order[o.delivery_id])

    def _send_one(  # noqa: PLR0911 - one return per kind of answer
        self, lane: _Lane, callback: str, message: OutboundMessage, text: str
    ) -> Outcome:
        segments = sms_segments_count(text=text).segments
        last: ProviderError | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                wait = backoff_s(attempt)
                if isinstance(last, ProviderThrottled):
                    wait = max(wait, last.retry_after_s)
                # The whole back-off after the answers are written: never shorter than asked.
                self._flush()
                self.sleep(wait)
            if not rate_limiter_acquire(
                limiter=lane.limiter,
                max_wait_s=self.max_wait_s,
                commit=not lane.commit_in_adapter,
                sleep=self._wait,
            ):
                return Deferred(message.delivery_id, "rate_limited", "pace is full",
                                self.max_wait_s)  # fmt: skip
            self._current.message = message
            try:
                # Waiting for the slot (or a back-off) may have carried us into quiet hours.
                self._quiet_gate()
                if not lane.commit_in_adapter:
                    self._leaving()
                sid = self._create(lane, callback, message.to, text)
            except QuietHoursBegan:
                return _quiet_deferred(message)
            except ClaimLost:
                return Deferred(message.delivery_id, CLAIM_LOST, CLAIM_LOST_TEXT)
            except LeaveWindowPassed as exc:
                # Nothing left: back to the queue like a full pace. If the sweeper already called
                # the row unknown, the write misses it and reconciliation finds nothing to list.
                return Deferred(message.delivery_id, LEAVE_WINDOW_PASSED, str(exc))
            except TwilioSuppress as exc:
                return Suppressed(message.delivery_id, exc.reason, exc.provider_code, str(exc))
            except ProviderRetryable as exc:  # throttled included: Twilio did not take it
                last = exc
                continue
            except ProviderError as exc:  # unknown or permanent: final for this attempt
                return outcome_for_error(message.delivery_id, exc)
            finally:
                self._current.message = None
            return Sent(message.delivery_id, sid, self.provider, cost_units=segments)
        assert last is not None  # noqa: S101 - the loop ran at least once and only retries set it  # nosec B101
        return outcome_for_error(message.delivery_id, last)

    def _wait(self, seconds: float) -> None:
        """Wait for a slot of the pace, but first write the answers still pending: a kill while
        waiting (most of a paced chunk's time) then finds every answer so far recorded. The
        write's time counts towards the wait, so the slot is kept."""
        started = time.monotonic()
        self._flush()
        left = seconds - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)

    def _flush(self) -> None:
        progress: SendProgress = getattr(self._current, "progress", NO_PROGRESS)
        progress.flush()

    def _quiet_gate(self) -> None:
        message = getattr(self._current, "message", None)
        if message is not None and _quiet_began(message):
            raise QuietHoursBegan(message.delivery_id)

    def _leaving(self) -> None:
        message = getattr(self._current, "message", None)
        if message is None:
            return
        progress: SendProgress = getattr(self._current, "progress", NO_PROGRESS)
        if message.delivery_id not in progress.leaving([message.delivery_id]):
            raise ClaimLost(message.delivery_id)

    def _create(self, lane: _Lane, callback: str, to: str, text: str) -> str:
        options: dict[str, str] = {"to": to, "body": text}
        if lane.messaging_service_sid:
            options["messaging_service_sid"] = lane.messaging_service_sid
        else:
            options["from_"] = lane.from_number
        if callback:
            options["status_callback"] = callback
        try:
            created = lane.client.messages.create(**options)
        except TwilioRestException as exc:
            raise twilio_error_sort(exc) from exc
        except requests.RequestException as exc:
            detail = f"{type(exc).__name__}: {exc}"[:500]
            if request_never_left(exc):
                raise ProviderRetryable(detail, provider_code="twilio_unreachable") from exc
            raise ProviderOutcomeUnknown(detail, provider_code="twilio_no_answer") from exc
        return str(created.sid)


def _leave_fence(recorded: float) -> None:
    """Refuse a request that would start too long after its "leaving" record (see the module's
    docstring): reconciliation's "never left" rule counts on this bound."""
    late = time.monotonic() - recorded
    if late > settings.DELIVERY_SMS_LEAVE_MAX_S:
        raise LeaveWindowPassed(f"{late:.1f} s after the request was recorded as leaving: not sent")


@dataclass(frozen=True)
class ListedSms:
    """One message as Twilio's Messages list shows it."""

    sid: str
    to: str
    body: str
    status: str
    direction: str
    date_created: datetime | None
    date_sent: datetime | None
    error_code: str


def twilio_messages_to(
    *,
    client: Client,
    to: str,
    sent_since: date | None,
    page_size: int,
    max_pages: int,
) -> tuple[list[ListedSms], bool]:
    """The account's messages to one number, newest first, from Twilio's Messages list
    (``GET .../Messages.json?To=...&DateSent>=YYYY-MM-DD``, following ``next_page_uri``).

    Returns (messages, complete); complete is False when more pages remained after
    ``max_pages``. With ``sent_since``, Twilio leaves out messages it has not sent yet (still in
    the account's queue, no ``date_sent``): callers that must see those list without it.
    Raises a ProviderError for Twilio's refusals and for a request that got no answer.
    """
    # The client must not be a sender's: those sessions pace and record every request.
    options: dict[str, Any] = {"to": to, "page_size": page_size}
    if sent_since is not None:
        # Twilio documents DateSent filters as GMT dates; the library would send a datetime.
        options["date_sent_after"] = sent_since.isoformat()
    listed: list[ListedSms] = []
    try:
        page = client.messages.page(**options)
        for number in range(max_pages):
            listed.extend(_listed(item) for item in page)
            if page.next_page_url is None:
                return listed, True
            if number + 1 < max_pages:
                page = page.next_page()
    except TwilioException as exc:
        raise _list_error(exc) from exc
    except (requests.RequestException, ValueError) as exc:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        raise ProviderRetryable(detail, provider_code="twilio_unreachable") from exc
    return listed, False


def _list_error(exc: TwilioException) -> ProviderError:
    """A list page Twilio refused, as one of our provider errors. The library raises a plain
    TwilioException carrying the response for a page, and TwilioRestException elsewhere."""
    retry_after_s = 1.0
    if isinstance(exc, TwilioRestException):
        status, code, text = exc.status, int(exc.code or 0), f"{exc.status} {exc.code}: {exc.msg}"
    else:
        response = exc.args[1] if len(exc.args) > 1 else None
        status = int(getattr(response, "status_code", 0) or 0)
        body = str(getattr(response, "text", "") or "")
        code, text = 0, f"{status}: {body[:300]}"
        headers = getattr(response, "headers", None) or {}
        # An HTTP-date or garbage keeps the default pause.
        with contextlib.suppress(TypeError, ValueError):
            retry_after_s = max(retry_after_s, float(headers.get("Retry-After", 0)))
    text = text[:500]
    if status == 429 or code == 20429:
        return ProviderThrottled(
            text, retry_after_s=retry_after_s, provider_code=str(code or status)
        )
    if status in (401, 403, 404):
        return ProviderPermanent(text, provider_code=str(code or status))
    # Anything else (a 5xx, a page that would not parse): a GET changes nothing, ask again later.
    return ProviderRetryable(text, provider_code=str(code or status or "twilio_list"))


def _listed(item: Any) -> ListedSms:
    return ListedSms(
        sid=str(item.sid or ""),
        to=str(item.to or ""),
        body=str(item.body or ""),
        status=str(item.status or ""),
        direction=str(item.direction or ""),
        date_created=item.date_created,
        date_sent=item.date_sent,
        error_code=str(item.error_code or ""),
    )


def _quiet_began(message: OutboundMessage) -> bool:
    return message.hold_from is not None and datetime.now(UTC) >= message.hold_from


def _quiet_deferred(message: OutboundMessage) -> Deferred:
    return Deferred(
        message.delivery_id, QUIET_HOURS_CODE, "the recipient's quiet hours began before the send"
    )


_STOP_WORD = re.compile(r"\bSTOP\b", re.IGNORECASE)


def sms_opt_out_append(text: str, message: OutboundMessage) -> str:
    """The text with the recipient's opt-out line, where one is due and the text lacks it."""
    if not message.opt_out_text or _STOP_WORD.search(text):
        return text
    return f"{text}\n{message.opt_out_text}"
