"""A loopback Twilio Messages API with signed status callbacks and error codes on demand.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded, HTTP basic auth with the
account SID and auth token) answers 201 with Twilio's message JSON and an ``SM…`` sid. Numbers in
``number_errors`` fail the way Twilio does; the defaults follow Twilio's magic test numbers:

    +15005550001  21211 invalid 'To' number        +15005550009  21614 not a mobile number
    +15005550004  21610 recipient replied STOP     +15005550429  20429 too many requests
    +15005550030  accepted, then ``undelivered`` with ErrorCode 30003 in the status callback

Accepted messages with a StatusCallback get ``sent`` then ``delivered`` (or ``undelivered``)
callbacks from a background thread, each signed with X-Twilio-Signature exactly as Twilio signs
(``RequestValidator.compute_signature`` over the URL and the sorted POST parameters).

``GET /2010-04-01/Accounts/{AccountSid}/Messages.json`` lists the account's messages as Twilio
does (what reconciliation reads, delivery/reconcile.py): filters ``To``, ``From``, ``DateSent``,
``DateSent<`` and ``DateSent>`` (sent as ``DateSent<=`` / ``DateSent>=``; a ``YYYY-MM-DD`` date or
an ISO datetime), newest first, ``PageSize`` 1-1000 (default 50) with ``next_page_uri`` and a
``PageToken`` that names the last message of the page before, so messages created while a client
pages never shift what it reads. Like Twilio, ``date_sent`` is empty while a message waits in the
account's queue (``queue_hold_s``), and a DateSent filter leaves such a message out. Two knobs
make the races a reconciler must survive: ``list_lag_s`` (a message is listed only this long after
it was created) and ``queue_hold_s``. Listing reads the kept messages, so it needs ``keep_bodies``.
"""

from __future__ import annotations

import base64
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from re import Match
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests
from twilio.request_validator import RequestValidator

from sandbox.base import FakeRequest, FakeResponse, FakeServer, Fault

DEFAULT_NUMBER_ERRORS: dict[str, int] = {
    "+15005550001": 21211,
    "+15005550004": 21610,
    "+15005550009": 21614,
    "+15005550429": 20429,
}
UNDELIVERED_NUMBERS: dict[str, int] = {"+15005550030": 30003}

_MESSAGES = {
    20001: (400, "Invalid PageSize"),
    20003: (401, "Authenticate"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21604: (400, "A 'To' phone number is required."),
    21602: (400, "Message body is required."),
    21606: (400, "The 'From' phone number provided is not a valid message-capable number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number {to} is not a valid mobile number"),
}


def twilio_error(code: int, **fmt: str) -> FakeResponse:
    status, message = _MESSAGES.get(code, (400, "Error"))
    return FakeResponse(
        status,
        {
            "code": code,
            "message": message.format(**fmt) if fmt else message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


@dataclass
class Callback:
    url: str
    params: dict[str, str]
    status_code: int | None = None
    error: str = ""
    auth_token: str = field(repr=False, default="")


@dataclass
class SentSms:
    sid: str
    to: str
    sender: str
    body: str
    status_callback: str
    params: dict[str, str] = field(repr=False, default_factory=dict)
    # The account that sent it (several accounts may share one fake).
    account_sid: str = ""
    # When the fake accepted it (epoch seconds), and the sender as given.
    created_at: float = field(default_factory=time.time)
    from_number: str = ""
    messaging_service_sid: str = ""


class TwilioFake(FakeServer):
    name = "twilio"

    def inbox_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            sent = list(self.messages)
        return [
            {
                "kind": "sms",
                "at": m.created_at,
                "to": m.to,
                "from": m.sender,
                "title": "",
                "body": m.body,
            }
            for m in sent
        ]

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "sandbox-twilio-token",  # noqa: S107 - the sandbox default in settings
        extra_accounts: dict[str, str] | None = None,
        send_callbacks: bool = True,
        keep_bodies: bool = True,
        list_lag_s: float = 0.0,
        queue_hold_s: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        # Account SID -> auth token of every account this fake serves (workspaces with Twilio
        # accounts of their own); each account's callbacks are signed with its own token.
        self.accounts = {account_sid: auth_token, **(extra_accounts or {})}
        self.send_callbacks = send_callbacks
        self.keep_bodies = keep_bodies
        # A new message is listed only this long after it was created (Twilio's lists lag).
        self.list_lag_s = list_lag_s
        # A new message waits this long in the account's queue: no date_sent until then.
        self.queue_hold_s = queue_hold_s
        self.list_requests = 0
        self.number_errors: dict[str, int] = dict(DEFAULT_NUMBER_ERRORS)
        self.messages: list[SentSms] = []
        self.callbacks: list[Callback] = []
        self.accepted = 0
        self._validator = RequestValidator(auth_token)
        self._callback_queue: queue.Queue[Callback | None] = queue.Queue()
        self._callback_thread: threading.Thread | None = None
        self._callback_session = requests.Session()
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.route("POST", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json", self._create)
        self.route("GET", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json", self._list)

    def record(self, request: FakeRequest) -> bool:
        return self.keep_bodies

    def start(self) -> TwilioFake:
        super().start()
        if self._callback_thread is None:
            self._callback_thread = threading.Thread(
                target=self._deliver_callbacks, name="sandbox-twilio-callbacks", daemon=True
            )
            self._callback_thread.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._callback_thread is not None and self.fault.mode != "refuse":
            self._callback_queue.put(None)
            self._callback_thread.join(timeout=5)
            self._callback_thread = None

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.messages.clear()
            self.callbacks.clear()
            self.accepted = 0
            self.list_requests = 0
            self.number_errors = dict(DEFAULT_NUMBER_ERRORS)

    def fault_response(self, fault: Fault) -> FakeResponse:
        if fault.mode == "rate_limit":
            response = twilio_error(20429)
            response.headers["Retry-After"] = str(fault.retry_after_s)
            return response
        if fault.body:
            return FakeResponse(fault.status, fault.body)
        if fault.status >= 500:
            return twilio_error(20503 if fault.status == 503 else 20500)
        return FakeResponse(
            fault.status, {"code": fault.status, "message": "sandbox fault", "status": fault.status}
        )

    def control_extra(self, action: str, request: FakeRequest) -> FakeResponse | None:
        if action == "numbers" and request.method == "POST":
            payload = request.json() or {}
            with self._lock:
                self.number_errors.update({str(k): int(v) for k, v in payload.items()})
            return FakeResponse(200, self.number_errors)
        return None

    # --- Messages.json ----------------------------------------------------------------------------

    def _authorized(self, request: FakeRequest, sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        token = self.accounts.get(sid)
        if not header.startswith("Basic ") or token is None:
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, sid) and secrets.compare_digest(password, token)

    def _create(self, request: FakeRequest, match: Match[str]) -> FakeResponse:  # noqa: PLR0911
        if not self._authorized(request, match["sid"]):
            return twilio_error(20003)
        params = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        to, body = params.get("To", ""), params.get("Body", "")
        sender = params.get("From", "")
        service = params.get("MessagingServiceSid", "")
        if not to:
            return twilio_error(21604)
        if not body:
            return twilio_error(21602)
        if not sender and not service:
            return twilio_error(21606)
        with self._lock:
            code = self.number_errors.get(to)
        if code is not None:
            return twilio_error(code, to=to)
        if not to.startswith("+") or not to[1:].isdigit() or not 8 <= len(to) <= 16:
            return twilio_error(21211, to=to)
        sid = "SM" + secrets.token_hex(16)
        callback = params.get("StatusCallback", "")
        account = match["sid"]
        with self._lock:
            self.accepted += 1
            if self.keep_bodies:
                self.messages.append(
                    SentSms(
                        sid,
                        to,
                        sender or service,
                        body,
                        callback,
                        params,
                        account,
                        from_number=sender,
                        messaging_service_sid=service,
                    )
                )
        if callback and self.send_callbacks:
            final = "undelivered" if to in UNDELIVERED_NUMBERS else "delivered"
            for status in ("sent", final):
                callback_params = {
                    "AccountSid": account,
                    "ApiVersion": "2010-04-01",
                    "From": sender or "+15005550006",
                    "MessageSid": sid,
                    "MessageStatus": status,
                    "SmsSid": sid,
                    "SmsStatus": status,
                    "To": to,
                }
                if service:
                    callback_params["MessagingServiceSid"] = service
                if status == "undelivered":
                    callback_params["ErrorCode"] = str(UNDELIVERED_NUMBERS[to])
                self._callback_queue.put(
                    Callback(callback, callback_params, auth_token=self.accounts[account])
                )
        now = formatdate(usegmt=True)
        return FakeResponse(
            201,
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender or None,
                "messaging_service_sid": service or None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "accepted" if service else "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
                },
                "to": to,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )

    def _list(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        account = match["sid"]
        if not self._authorized(request, account):
            return twilio_error(20003)
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        try:
            page_size = int(params.get("PageSize") or 50)
            bounds = _date_sent_bounds(params)
        except ValueError:
            return twilio_error(20001)
        if not 1 <= page_size <= 1000:
            return twilio_error(20001)
        now = time.time()
        with self._lock:
            self.list_requests += 1
            kept = [m for m in self.messages if m.account_sid == account]
        listed = []
        for message in kept:
            if now < message.created_at + self.list_lag_s:
                continue
            if params.get("To") and message.to != params["To"]:
                continue
            if params.get("From") and params["From"] not in (
                message.from_number,
                message.messaging_service_sid,
            ):
                continue
            sent_at = self._date_sent(message, now)
            if bounds and (sent_at is None or not all(test(sent_at) for test in bounds)):
                continue
            listed.append((message, sent_at))
        # Newest first: still queued (no date_sent) ahead of sent, then by date sent.
        listed.sort(
            key=lambda item: (item[1] is None, item[1] or datetime.min.replace(tzinfo=UTC),
                              item[0].created_at),
            reverse=True,
        )  # fmt: skip
        start = 0
        token = params.get("PageToken", "")
        if token:
            sids = [m.sid for m, _ in listed]
            after = token.removeprefix("PA")
            start = sids.index(after) + 1 if after in sids else len(sids)
        page = listed[start : start + page_size]
        number = int(params.get("Page") or 0)
        base = f"/2010-04-01/Accounts/{account}/Messages.json"
        query = {k: v for k, v in params.items() if k not in ("Page", "PageToken")}
        query["PageSize"] = str(page_size)
        next_uri = None
        if start + page_size < len(listed):
            next_query = {**query, "Page": str(number + 1), "PageToken": "PA" + page[-1][0].sid}
            next_uri = f"{base}?{urlencode(next_query)}"
        return FakeResponse(
            200,
            {
                "end": start + len(page) - 1 if page else 0,
                "first_page_uri": f"{base}?{urlencode({**query, 'Page': '0'})}",
                "next_page_uri": next_uri,
                "page": number,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": start,
                "uri": f"{base}?{urlencode(params)}",
                "messages": [self._message_json(m, sent_at, now) for m, sent_at in page],
            },
        )

    def _date_sent(self, message: SentSms, now: float) -> datetime | None:
        """Twilio fills date_sent once the message leaves its queue for the carrier."""
        left = message.created_at + self.queue_hold_s
        return None if now < left else datetime.fromtimestamp(left, tz=UTC)

    def _message_json(
        self, message: SentSms, sent_at: datetime | None, now: float
    ) -> dict[str, Any]:
        if sent_at is None:
            status = "accepted" if message.messaging_service_sid else "queued"
        else:
            status = "undelivered" if message.to in UNDELIVERED_NUMBERS else "delivered"
        error = UNDELIVERED_NUMBERS.get(message.to) if sent_at is not None else None
        uri = f"/2010-04-01/Accounts/{message.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": message.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": formatdate(message.created_at, usegmt=True),
            "date_sent": formatdate(sent_at.timestamp(), usegmt=True) if sent_at else None,
            "date_updated": formatdate(now, usegmt=True),
            "direction": "outbound-api",
            "error_code": error,
            "error_message": None,
            "from": message.from_number or None,
            "messaging_service_sid": message.messaging_service_sid or None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }

    # --- webhooks back to the app -----------------------------------------------------------------

    def signature(self, url: str, params: dict[str, str], *, auth_token: str = "") -> str:
        validator = RequestValidator(auth_token) if auth_token else self._validator
        return str(validator.compute_signature(url, params))

    def webhook_post(
        self, url: str, params: dict[str, str], *, auth_token: str = ""
    ) -> requests.Response:
        """POST a form to the app the way Twilio does, signed with the auth token (the main
        account's unless another account's is given)."""
        headers = {"X-Twilio-Signature": self.signature(url, params, auth_token=auth_token)}
        return self._callback_session.post(url, data=params, headers=headers, timeout=10)

    def inbound_post(
        self, url: str, *, sender: str, body: str, to: str = "+15005550006", **extra: str
    ) -> requests.Response:
        """An inbound SMS webhook (a reply such as STOP), signed like Twilio's."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": sender,
            "MessageSid": "SM" + secrets.token_hex(16),
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "To": to,
            **extra,
        }
        return self.webhook_post(url, params)

    def _deliver_callbacks(self) -> None:
        while True:
            callback = self._callback_queue.get()
            if callback is None:
                return
            try:
                response = self.webhook_post(
                    callback.url, callback.params, auth_token=callback.auth_token
                )
                callback.status_code = response.status_code
            except requests.RequestException as exc:
                callback.error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.callbacks.append(callback)


def _when(value: str, *, end_of_day: bool) -> datetime:
    """A DateSent value: ``YYYY-MM-DD`` (the whole day, GMT) or an ISO 8601 datetime."""
    if len(value) == len("2009-07-06"):
        day = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        return day + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else day
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date_sent_bounds(params: dict[str, str]) -> list[Any]:
    """The DateSent filters as tests on a message's date_sent (each raises on a bad value)."""
    tests: list[Any] = []
    if value := params.get("DateSent>"):
        low = _when(value, end_of_day=False)
        tests.append(lambda sent: sent >= low)
    if value := params.get("DateSent<"):
        high = _when(value, end_of_day=True)
        tests.append(lambda sent: sent <= high)
    if value := params.get("DateSent"):
        start = _when(value, end_of_day=False)
        end = _when(value, end_of_day=True)
        tests.append(lambda sent: start <= sent <= end)
    return tests
