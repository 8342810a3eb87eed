"""A loopback RFC 8030 push service that checks VAPID and decrypts what it receives.

``POST /push/{id}`` is a subscription's endpoint. The fake checks what a real push service checks
(RFC 8292 VAPID: an ES256 JWT whose ``aud`` is this service's origin, an ``exp`` in the next 24
hours and a ``sub``; RFC 8030: a TTL, a valid Urgency and Topic) and then DECRYPTS the aes128gcm
body (RFC 8291) with the subscription's private key and auth secret, so a test sees the plaintext
the browser would. Answers: 201 created; 400 malformed; 401/403 VAPID problems; 404 unknown
subscription; 410 expired (``subscription_expire``); 413 body over 4,096 bytes; 429 when told to
rate-limit (with Retry-After).

It runs on aiohttp's low-level server in a thread with its own event loop: a threaded
``http.server`` tops out near 1,200 requests/s on this machine, below what the push benchmark
sends. Verified VAPID tokens are cached by token (a sender reuses one per origin for minutes), but
``exp`` is checked on every request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt

from sandbox.base import CONTROL_PREFIX, FakeRequest, FakeResponse, FakeServer, Fault

MAX_BODY_BYTES = 4096
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeSubscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    gone: bool = False
    application_server_key: str = ""

    def info(self, base_url: str) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{base_url}/push/{self.id}",
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }


@dataclass
class ReceivedPush:
    subscription_id: str
    ttl: int
    urgency: str
    topic: str
    payload: bytes
    received_at: float


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PushServiceFake(FakeServer):
    name = "push"

    def __init__(self, *, keep_payloads: bool = True, **kwargs: Any) -> None:
        self.keep_payloads = keep_payloads
        self.subscriptions: dict[str, FakeSubscription] = {}
        self.pushes: list[ReceivedPush] = []
        self.accepted = 0
        self.rejected: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._token_cache: dict[tuple[str, str], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._loop_thread: threading.Thread | None = None
        super().__init__(**kwargs)

    # --- subscriptions ----------------------------------------------------------------------------

    def subscription_create(self, *, application_server_key: str = "") -> dict[str, Any]:
        """A new browser-like subscription (key pair + auth secret) on this fake: its JSON."""
        sub = FakeSubscription(
            id=f"{next(self._ids)}-{b64url(os.urandom(6))}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
            application_server_key=application_server_key,
        )
        with self._lock:
            self.subscriptions[sub.id] = sub
        return sub.info(self.url)

    def subscription_expire(self, endpoint: str) -> None:
        """The browser dropped it: the endpoint answers 410 Gone from now on."""
        with self._lock:
            self.subscriptions[endpoint.rsplit("/", 1)[-1]].gone = True

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.pushes.clear()
            self.accepted = 0
            self.rejected.clear()

    def inbox_messages(self) -> list[dict[str, Any]]:
        # Decrypted payloads: the raw bodies are ciphertext, useless to a reader.
        with self._lock:
            pushes = list(self.pushes)
        return [
            {
                "kind": "push",
                "at": p.received_at,
                "to": p.subscription_id,
                "title": p.topic,
                "body": _pretty_json(p.payload.decode("utf-8", "replace")),
            }
            for p in pushes
        ]

    def control(self, request: FakeRequest) -> FakeResponse:
        # The inbox lists decrypted pushes: the raw bodies are ciphertext, useless to a reader.
        if request.path.rstrip("/") == f"{CONTROL_PREFIX}received" and request.method == "GET":
            with self._lock:
                items = [
                    {
                        "subscription": p.subscription_id,
                        "received_at": p.received_at,
                        "ttl": p.ttl,
                        "urgency": p.urgency,
                        "topic": p.topic,
                        "body": p.payload[:4096].decode("utf-8", "replace"),
                    }
                    for p in self.pushes[-200:]
                ]
                count = self.accepted
            return FakeResponse(200, {"name": self.name, "count": count, "items": items})
        return super().control(request)

    def control_extra(self, action: str, request: FakeRequest) -> FakeResponse | None:
        if action == "subscriptions" and request.method == "POST":
            payload = request.json() or {}
            count = int(payload.get("count", 1))
            if not 1 <= count <= 100_000:
                return FakeResponse(400, {"error": "count must be 1..100000"})
            return FakeResponse(200, [self.subscription_create() for _ in range(count)])
        if action == "stats" and request.method == "GET":
            with self._lock:
                return FakeResponse(200, {"accepted": self.accepted, "rejected": self.rejected})
        return None

    # --- lifecycle: aiohttp's low-level server on a loop in its own thread ------------------------

    def start(self) -> Self:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                server = web.Server(self._handle, access_log=None, loop=loop)
                port = self.port or self._requested_port
                listener = loop.run_until_complete(
                    loop.create_server(server, self.host, port, reuse_address=True, backlog=1024)
                )
                self._server = listener
                self.port = listener.sockets[0].getsockname()[1]
            except BaseException as exc:  # handed to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            listener.close()
            # Handlers still sleeping (a "timeout" fault) are cancelled, not left to warn at exit.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(server.shutdown(0.5))
            loop.close()

        self._loop_thread = threading.Thread(target=run, name="sandbox-push", daemon=True)
        self._loop_thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)
        self._loop = self._server = self._loop_thread = None

    def set_fault(self, fault: Fault | None = None, **kwargs: Any) -> None:
        # The base decides listening by ``_httpd``; here the asyncio server is the listener.
        new = fault or Fault(**kwargs)
        with self._lock:
            self._fault = new
        if new.mode == "refuse" and self._server is not None:
            self.stop()
        elif new.mode != "refuse" and self._server is None:
            self.start()

    # --- the endpoint -----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        if path.startswith(CONTROL_PREFIX):
            fake_request = FakeRequest(
                request.method, path, request.query_string, dict(request.headers), body
            )
            return _web_response(self.control(fake_request))
        fault = self.take_fault()
        if fault.mode != "ok":
            early = await self._fault_answer(request, fault, body)
            if early is not None:
                return early
        if request.method != "POST" or not path.startswith("/push/"):
            return web.json_response({"error": f"no route {path}"}, status=404)
        try:
            received = self._accept(path[len("/push/") :], request.headers, body)
        except _Reject as exc:
            with self._lock:
                self.rejected[exc.status] = self.rejected.get(exc.status, 0) + 1
            return web.json_response({"error": exc.reason}, status=exc.status)
        with self._lock:
            self.accepted += 1
            if self.keep_payloads:
                self.pushes.append(received)
        return web.Response(status=201, headers={"Location": f"{self.url}/m/{self.accepted}"})

    async def _fault_answer(
        self, request: web.BaseRequest, fault: Fault, body: bytes
    ) -> web.StreamResponse | None:
        if fault.mode == "slow":
            await asyncio.sleep(fault.delay_s)
            return None
        if fault.mode == "rate_limit":
            return web.json_response(
                {"error": "rate limited"},
                status=429,
                headers={"Retry-After": str(fault.retry_after_s)},
            )
        if fault.mode == "error":
            return web.json_response({"error": "sandbox fault"}, status=fault.status)
        if fault.mode in ("reset", "timeout"):
            if fault.mode == "timeout":
                if fault.after_accept:
                    with contextlib.suppress(_Reject):
                        sub_id = request.path[len("/push/") :]
                        received = self._accept(sub_id, request.headers, body)
                        with self._lock:
                            self.accepted += 1
                            if self.keep_payloads:
                                self.pushes.append(received)
                await asyncio.sleep(fault.delay_s or 5.0)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return None

    def _accept(self, sub_id: str, headers: Any, body: bytes) -> ReceivedPush:
        with self._lock:
            sub = self.subscriptions.get(sub_id)
        if sub is None:
            raise _Reject(404, "no such subscription")
        if sub.gone:
            raise _Reject(410, "subscription expired")
        self._check_vapid(headers, sub)
        ttl_text = headers.get("TTL", "")
        if not ttl_text.isdigit():
            raise _Reject(400, "TTL header missing or not a whole number")
        urgency = headers.get("Urgency", "normal")
        if urgency not in URGENCIES:
            raise _Reject(400, f"Urgency must be one of {sorted(URGENCIES)}")
        topic = headers.get("Topic", "")
        if topic and (len(topic) > 32 or not set(topic) <= _B64URL):
            raise _Reject(400, "Topic must be at most 32 URL-safe base64 characters")
        if len(body) > MAX_BODY_BYTES:
            raise _Reject(413, f"payload of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
        payload = b""
        if body:
            if headers.get("Content-Encoding", "").lower() != "aes128gcm":
                raise _Reject(400, "Content-Encoding must be aes128gcm")
            try:
                payload = http_ece.decrypt(
                    body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
                )
            except Exception as exc:  # http_ece raises a bare ECEException or struct errors
                raise _Reject(400, f"payload does not decrypt: {type(exc).__name__}") from exc
        return ReceivedPush(sub_id, int(ttl_text), urgency, topic, payload, time.time())

    def _check_vapid(self, headers: Any, sub: FakeSubscription) -> None:
        auth = headers.get("Authorization", "")
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() == "vapid":
            parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
            token, key = parts.get("t", ""), parts.get("k", "")
        elif scheme.lower() == "webpush":
            token = rest.strip()
            crypto = dict(
                p.strip().split("=", 1)
                for p in headers.get("Crypto-Key", "").replace(",", ";").split(";")
                if "=" in p
            )
            key = crypto.get("p256ecdsa", "")
        else:
            raise _Reject(401, "VAPID Authorization header missing")
        if not token or not key:
            raise _Reject(401, "VAPID token or key missing")
        if sub.application_server_key and key != sub.application_server_key:
            raise _Reject(403, "VAPID key differs from the subscription's applicationServerKey")
        now = int(time.time())
        exp = self._token_cache.get((token, key))
        if exp is None:
            try:
                claims = vapid_jwt.decode(token, key)
            except (InvalidSignature, ValueError) as exc:
                raise _Reject(401, "VAPID signature does not verify") from exc
            if claims.get("aud") != self.url:
                raise _Reject(401, f"VAPID aud {claims.get('aud')!r} is not {self.url!r}")
            if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
                raise _Reject(401, "VAPID sub must be a mailto: or https: URL")
            exp = int(claims.get("exp") or 0)
            if exp > now + 24 * 3600:
                raise _Reject(401, "VAPID exp is more than 24 hours ahead")
            with self._lock:
                if len(self._token_cache) > 10_000:
                    self._token_cache.clear()
                self._token_cache[(token, key)] = exp
        if exp <= now:
            raise _Reject(401, "VAPID token expired")


def _web_response(response: FakeResponse) -> web.Response:
    body, headers = response.encoded()
    return web.Response(status=response.status, body=body, headers=headers)


def sandbox_push_subscriptions_create(*, count: int = 1, base_url: str | None = None) -> list[Any]:
    """Browser-like subscriptions on a running sandbox push service (``manage.py sandbox``)."""
    import requests
    from django.conf import settings

    url = (base_url or settings.SANDBOX_PUSH_BASE_URL).rstrip("/")
    response = requests.post(
        f"{url}{CONTROL_PREFIX}subscriptions", json={"count": count}, timeout=10
    )
    response.raise_for_status()
    return list(response.json())
