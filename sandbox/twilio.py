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
"""

from __future__ import annotations

import base64
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from re import Match
from typing import Any
from urllib.parse import parse_qsl

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
    received_at: float = field(default_factory=time.time)


class TwilioFake(FakeServer):
    name = "twilio"

    def inbox_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            sent = list(self.messages)
        return [
            {
                "kind": "sms",
                "at": m.received_at,
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
        **kwargs: Any,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        # Account SID -> auth token of every account this fake serves (workspaces with Twilio
        # accounts of their own); each account's callbacks are signed with its own token.
        self.accounts = {account_sid: auth_token, **(extra_accounts or {})}
        self.send_callbacks = send_callbacks
        self.keep_bodies = keep_bodies
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
                    SentSms(sid, to, sender or service, body, callback, params, account)
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
