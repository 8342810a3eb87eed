"""A loopback SendGrid v3: ``POST /v3/mail/send`` with SendGrid's validation and error shape.

It enforces what bites in production: at most 1,000 personalizations and 1,000 recipients per
request, each address once per request, a Bearer API key, and a well-formed address (field paths
such as ``personalizations.3.to.0.email`` name the culprit, as SendGrid's do). Addresses in
``rejected`` (or at the ``reject.sandbox.test`` domain) are refused the same way, which is how tests
produce "an address SendGrid rejects". Accepted requests get 202 with ``X-Message-Id``; each
personalization is kept in ``personalizations`` with the message id and the anymail id.

The fake can also sign event-webhook posts with an ECDSA P-256 key, like SendGrid's signed event
webhook; ``verification_key`` is the base64 DER public key to configure as
``SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY``.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from re import Match
from typing import Any, Self

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.base import FakeRequest, FakeResponse, FakeServer, Fault

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
REJECT_DOMAIN = "reject.sandbox.test"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _error(status: int, message: str, field_name: str | None = None) -> FakeResponse:
    # SendGrid's v3 error shape: {"errors": [{"message", "field", "help"}]}.
    return FakeResponse(
        status, {"errors": [{"message": message, "field": field_name, "help": None}]}
    )


@dataclass
class ReceivedPersonalization:
    message_id: str
    to: list[str]
    subject: str
    substitutions: dict[str, str]
    headers: dict[str, str]
    custom_args: dict[str, str]
    content: list[dict[str, str]] = field(repr=False, default_factory=list)
    from_email: str = ""
    reply_to: list[str] = field(default_factory=list)
    # The API key the request was authorised with (several accounts may share one fake).
    api_key: str = ""
    received_at: float = field(default_factory=time.time)

    @property
    def anymail_id(self) -> str:
        return self.custom_args.get("anymail_id", "")

    def rendered(self, content_type: str) -> str:
        """The body this recipient would see: the request's content with substitutions applied."""
        body = next((c["value"] for c in self.content if c["type"] == content_type), "")
        for tag, value in self.substitutions.items():
            body = body.replace(tag, value)
        return body


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    for tag, value in substitutions.items():
        text = text.replace(tag, value)
    return text


def _signing_key(pem: str) -> ec.EllipticCurvePrivateKey:
    if not pem:
        return ec.generate_private_key(ec.SECP256R1())
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the SendGrid event signing key must be an EC P-256 private key")
    return key


class SendGridFake(FakeServer):
    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-sendgrid-key",
        extra_api_keys: tuple[str, ...] = (),
        keep_bodies: bool = True,
        signing_key_pem: str = "",
        events_url: str = "",
        **kwargs: Any,
    ) -> None:
        self.api_key = api_key
        # More accounts' keys this fake accepts (workspaces with SendGrid accounts of their own).
        self.api_keys = frozenset((api_key, *extra_api_keys))
        # When set, every accepted personalization gets signed "processed" and "delivered"
        # events POSTed there from a background thread, as SendGrid's event webhook would.
        self.events_url = events_url
        self.event_posts: list[int | str] = []
        self._events: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._events_thread: threading.Thread | None = None
        self.keep_bodies = keep_bodies
        self.rejected: set[str] = set()
        self.personalizations: list[ReceivedPersonalization] = []
        self.accepted_requests = 0
        self.accepted_recipients = 0
        self._signing_key = _signing_key(signing_key_pem)
        self._count_lock = threading.Lock()
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.route("POST", r"/v3/mail/send", self._mail_send)

    def record(self, request: FakeRequest) -> bool:
        return self.keep_bodies

    def inbox_messages(self) -> list[dict[str, Any]]:
        # One request carries up to 1,000 recipients: each personalization is one email, shown
        # as that recipient would see it.
        with self._count_lock:
            received = list(self.personalizations)
        return [
            {
                "kind": "email",
                "at": p.received_at,
                "to": ", ".join(p.to),
                "from": p.from_email,
                "title": _substitute(p.subject, p.substitutions),
                "html": p.rendered("text/html"),
                "body": p.rendered("text/plain"),
            }
            for p in received
        ]

    def reset(self) -> None:
        super().reset()
        with self._count_lock:
            self.personalizations.clear()
            self.accepted_requests = self.accepted_recipients = 0

    def fault_response(self, fault: Fault) -> FakeResponse:
        if fault.mode == "rate_limit":
            response = _error(429, "too many requests")
            response.headers["Retry-After"] = str(fault.retry_after_s)
            return response
        if fault.body:
            return FakeResponse(fault.status, fault.body)
        return _error(fault.status, "sandbox: internal server error")

    # --- mail/send --------------------------------------------------------------------------------

    def _mail_send(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        authorization = request.headers.get("Authorization", "")
        api_key = authorization.removeprefix("Bearer ")
        if not authorization.startswith("Bearer ") or api_key not in self.api_keys:
            return _error(401, "The provided authorization grant is invalid, expired, or revoked")
        try:
            payload = request.json()
        except ValueError:
            return _error(400, "Bad Request", None)
        if not isinstance(payload, dict):
            return _error(400, "Bad Request", None)
        problem = self._validate(payload)
        if problem is not None:
            return problem
        message_id = uuid.uuid4().hex[:22]
        received = [
            ReceivedPersonalization(
                message_id=message_id,
                to=[r["email"] for r in p.get("to", [])],
                subject=p.get("subject", payload.get("subject", "")),
                substitutions=dict(p.get("substitutions") or {}),
                headers={**(payload.get("headers") or {}), **(p.get("headers") or {})},
                custom_args={**(payload.get("custom_args") or {}), **(p.get("custom_args") or {})},
                content=payload.get("content", []) if self.keep_bodies else [],
                from_email=(payload.get("from") or {}).get("email", ""),
                reply_to=[r["email"] for r in payload.get("reply_to_list", [])],
                api_key=api_key,
            )
            for p in payload["personalizations"]
        ]
        with self._count_lock:
            self.accepted_requests += 1
            self.accepted_recipients += sum(len(p.to) for p in received)
            if self.keep_bodies:
                self.personalizations.extend(received)
        if self.events_url:
            for event in ("processed", "delivered"):
                self._events.put(self._events_of(received, event))
        return FakeResponse(202, b"", {"X-Message-Id": message_id})

    def start(self) -> Self:
        super().start()
        if self.events_url and self._events_thread is None:
            self._events_thread = threading.Thread(
                target=self._post_events, name="sandbox-sendgrid-events", daemon=True
            )
            self._events_thread.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._events_thread is not None and self.fault.mode != "refuse":
            self._events.put(None)
            self._events_thread.join(timeout=5)
            self._events_thread = None

    def _post_events(self) -> None:
        while True:
            events = self._events.get()
            if events is None:
                return
            try:
                self.event_posts.append(self.events_post(self.events_url, events).status_code)
            except requests.RequestException as exc:
                self.event_posts.append(f"{type(exc).__name__}: {exc}")

    def _validate(self, payload: dict[str, Any]) -> FakeResponse | None:  # noqa: PLR0911
        personalizations = payload.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            return _error(400, "You must have at least one personalization.", "personalizations")
        if len(personalizations) > MAX_PERSONALIZATIONS:
            return _error(
                400,
                "The personalization block is limited to 1000 personalizations per API request. "
                f"You have provided {len(personalizations)} personalizations. Please consider "
                "splitting this into multiple requests and resending your request.",
                "personalizations",
            )
        if not (payload.get("from") or {}).get("email"):
            return _error(400, "The from object must be provided for every email send.", "from")
        if not payload.get("content") and not payload.get("template_id"):
            return _error(400, "Unless a valid template_id is provided, the content parameter "
                          "is required.", "content")  # fmt: skip
        seen: set[str] = set()
        total = 0
        for index, personalization in enumerate(personalizations):
            for kind in ("to", "cc", "bcc"):
                for position, recipient in enumerate(personalization.get(kind) or []):
                    total += 1
                    address = str((recipient or {}).get("email", ""))
                    where = f"personalizations.{index}.{kind}.{position}.email"
                    if (
                        not _ADDRESS.match(address)
                        or address.lower() in self.rejected
                        or address.lower().endswith("@" + REJECT_DOMAIN)
                    ):
                        return _error(400, "Does not contain a valid address.", where)
                    if address.lower() in seen:
                        return _error(
                            400,
                            "Each unique email address in the personalizations array should "
                            "only be included once. You have included "
                            f"[{address}] more than once.",
                            f"personalizations.{index}",
                        )
                    seen.add(address.lower())
        if total > MAX_RECIPIENTS:
            return _error(400, "There is a limit of 1000 total recipients (to + cc + bcc) "
                          "per request.", "personalizations")  # fmt: skip
        return None

    # --- signed event webhook ---------------------------------------------------------------------

    @property
    def verification_key(self) -> str:
        """The public key, base64 DER, as SendGrid's settings page shows it."""
        der = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def events_sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The signature headers SendGrid sends with an event-webhook body."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._signing_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    def events_for(self, event: str = "delivered", **extra: Any) -> list[dict[str, Any]]:
        """One SendGrid event per received personalization, with its custom args merged in."""
        with self._count_lock:
            received = list(self.personalizations)
        return self._events_of(received, event, **extra)

    @staticmethod
    def _events_of(
        received: list[ReceivedPersonalization], event: str, **extra: Any
    ) -> list[dict[str, Any]]:
        now = int(time.time())
        return [
            {
                "email": p.to[0],
                "timestamp": now,
                "event": event,
                "sg_event_id": uuid.uuid4().hex,
                "sg_message_id": f"{p.message_id}.filter0001.{index}",
                "smtp-id": f"<{p.message_id}@sandbox>",
                **p.custom_args,
                **extra,
            }
            for index, p in enumerate(received)
        ]

    def events_post(self, url: str, events: list[dict[str, Any]]) -> requests.Response:
        body = json.dumps(events).encode()
        return requests.post(url, data=body, headers=self.events_sign(body), timeout=10)
