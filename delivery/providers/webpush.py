"""Web push through pywebpush (RFC 8291 encryption) and py-vapid (RFC 8292 VAPID).

Every push carries a TTL (pywebpush's default of 0 drops messages to offline browsers), an
Urgency and a Topic: the content's, or one derived from the content itself. A later push with the
same topic replaces an undelivered earlier one, so an accidental second copy of the same message
to a browser that is offline collapses into one. The VAPID header is signed
once per push-service origin and reused for ``VAPID_HEADER_CACHE_S`` (signing is per origin, not
per message). Each message is encrypted separately for its subscription.

Transport: asyncio + aiohttp, one ClientSession (a keep-alive connection pool) per push-service
origin, up to ``DELIVERY_PUSH_CONCURRENCY`` requests in flight, through pywebpush's own
``WebPusher.send_async``. Measured here, a requests.Session loop managed ~440 pushes/s per process
against the loopback push service, below what a 1,000-push chunk needs; aiohttp is already a
dependency (pywebpush's own async path).

Answers: 201 sent; 404/410 subscription gone (the caller deactivates it); 413 and a payload over
the 4 KB record limit (refused before sending) fail for good; 429 defers every remaining message to
that push-service host for its Retry-After (back-off per host); other 4xx (VAPID problems) fail;
5xx and connection failures before the request left are deferred; a read timeout is unknown.

Progress is reported per window of ``DELIVERY_PUSH_PROGRESS_WINDOW`` pushes (a few times the
concurrency): a worker lost mid-batch leaves at most one window `unknown`, and the rest of the
batch goes back to the queue.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher

from continuity.outbound import (
    OutboundRefused,
    outbound_refusal,
    outbound_session,
    push_endpoint_check,
    push_sandbox_allow,
)
from delivery.merge import merge_template_compile
from delivery.providers.base import (
    Deferred,
    Failed,
    OutboundMessage,
    Outcome,
    PushContent,
    Sent,
    Suppressed,
    SuppressReason,
    Unknown,
    outcomes_credentials_unreadable,
)
from delivery.providers.progress import CLAIM_LOST, CLAIM_LOST_TEXT, NO_PROGRESS, SendProgress
from delivery.templating import TEMPLATE_INVALID, MarketerTemplateError
from delivery.transport import transport_error_sort

# RFC 8291: a push service must accept 4,096-byte records; the aes128gcm header (86 bytes), the
# AEAD tag (16) and the padding delimiter (1) leave 3,993 bytes of plaintext.
MAX_PLAINTEXT_BYTES = 4096 - 86 - 16 - 1
VAPID_HEADER_CACHE_S = 300
PAYLOAD_KEYS = ("title", "body", "url", "icon")
VAPID_EXP_S = 12 * 3600
# Failures that are the subscription's own (keys missing or unusable), as opposed to the content's
# (too large) or ours (VAPID): only these count against the subscription in the CRM.
SUBSCRIPTION_FAILURE_CODES = frozenset({"no_keys", "push_invalid", "endpoint_refused"})
_vapid_cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
# Push-service hosts that answered 429, and until when this process leaves them alone.
_host_backoff: dict[str, float] = {}


def vapid_key_load(*, private_key: str | None = None) -> Vapid02:
    """The VAPID key from settings (raw base64url or PEM); in DEBUG a generated one in var/."""
    configured = settings.VAPID_PRIVATE_KEY if private_key is None else private_key
    if configured:
        if "-----BEGIN" in configured:
            return Vapid02.from_pem(configured.encode())
        return Vapid02.from_string(configured)
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            "VAPID_PRIVATE_KEY is not set: run `manage.py vapid_keys` and set the lines it prints."
        )
    path = Path(settings.VAR_DIR) / "vapid_private.pem"
    if not path.exists():
        vapid = Vapid02()
        vapid.generate_keys()
        path.write_bytes(vapid.private_pem())
        path.chmod(0o600)
    return Vapid02.from_pem(path.read_bytes())


def vapid_public_key(vapid: Vapid02) -> str:
    """The applicationServerKey a browser subscribes with (base64url, uncompressed point)."""
    from cryptography.hazmat.primitives import serialization

    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return str(b64urlencode(raw))


def push_origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def vapid_headers(
    *, vapid: Vapid02, origin: str, subject: str, public_key: str = ""
) -> dict[str, str]:
    """The signed VAPID Authorization header for one push-service origin, cached a few minutes."""
    key = (public_key or vapid_public_key(vapid), origin)
    now = time.time()
    cached = _vapid_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    claims = {"aud": origin, "sub": subject, "exp": int(now) + VAPID_EXP_S}
    headers = {k: str(v) for k, v in vapid.sign(claims).items()}
    _vapid_cache[key] = (now + VAPID_HEADER_CACHE_S, headers)
    return headers


def push_topic_default(*, content: PushContent) -> str:
    """A Topic (<= 32 URL-safe characters) that is the same for the same message content."""
    digest = hashlib.sha256(
        "\x1f".join((content.title, content.body, content.url, content.icon)).encode()
    ).digest()
    return "m" + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:31]


class WebPushSender:
    """The web push channel. ``messages[i].to`` is the endpoint, ``push_keys`` its keys."""

    channel = "push"
    provider = "webpush"
    # send_batch takes a SendProgress and reports each request as it goes.
    reports_progress = True

    def __init__(
        self,
        *,
        vapid: Vapid02 | None = None,
        subject: str | None = None,
        ttl_s: int | None = None,
        urgency: str | None = None,
        timeout_s: float | None = None,
        concurrency: int | None = None,
        window: int | None = None,
    ) -> None:
        self.vapid = vapid or vapid_key_load()
        self._public_key = vapid_public_key(self.vapid)
        self.subject = subject or settings.VAPID_SUBJECT
        self.ttl_s = settings.DELIVERY_PUSH_TTL_S if ttl_s is None else ttl_s
        self.urgency = urgency or settings.DELIVERY_PUSH_URGENCY
        self.timeout_s = timeout_s or settings.DELIVERY_PUSH_TIMEOUT_S
        self.concurrency = concurrency or settings.DELIVERY_PUSH_CONCURRENCY
        # At most this many pushes are recorded as leaving at once: what a lost worker can leave
        # `unknown`. Several times the concurrency, so the pause between windows stays small.
        self.window = window or settings.DELIVERY_PUSH_PROGRESS_WINDOW

    def send_batch(
        self,
        *,
        content: PushContent,
        messages: Sequence[OutboundMessage],
        progress: SendProgress | None = None,
    ) -> list[Outcome]:
        """Send in windows of ``DELIVERY_PUSH_PROGRESS_WINDOW`` messages: each window is recorded
        as leaving before its first request and its answers right after its last, on one event
        loop (and its connection pools) for the whole batch. The records are synchronous ORM
        writes, so they run between windows, while no loop is running in this thread."""
        if content.credentials_error:
            return outcomes_credentials_unreadable(messages, content.credentials_error)
        # Without a progress record there is nothing to wait for between windows.
        size = self.window if progress is not None else max(len(messages), 1)
        progress = progress or NO_PROGRESS
        outcomes: list[Outcome] = []
        with asyncio.Runner() as runner:
            sessions: dict[str, aiohttp.ClientSession] = {}
            try:
                for start in range(0, len(messages), size):
                    window = messages[start : start + size]
                    ours = set(progress.leaving([m.delivery_id for m in window]))
                    lost: list[Outcome] = [
                        Deferred(m.delivery_id, CLAIM_LOST, CLAIM_LOST_TEXT)
                        for m in window
                        if m.delivery_id not in ours
                    ]
                    todo = [m for m in window if m.delivery_id in ours]
                    answered = runner.run(
                        self._send_window(content=content, messages=todo, sessions=sessions)
                    )
                    progress.settled([*answered, *lost])
                    outcomes += answered + lost
            finally:
                runner.run(_sessions_close(sessions))
        order = {m.delivery_id: i for i, m in enumerate(messages)}
        return sorted(outcomes, key=lambda o: order[o.delivery_id])

    async def send_batch_async(
        self, *, content: PushContent, messages: Sequence[OutboundMessage]
    ) -> list[Outcome]:
        if content.credentials_error:
            return outcomes_credentials_unreadable(messages, content.credentials_error)
        sessions: dict[str, aiohttp.ClientSession] = {}
        try:
            return await self._send_window(content=content, messages=messages, sessions=sessions)
        finally:
            await _sessions_close(sessions)

    async def _send_window(
        self,
        *,
        content: PushContent,
        messages: Sequence[OutboundMessage],
        sessions: dict[str, aiohttp.ClientSession],
    ) -> list[Outcome]:
        if not messages:
            return []
        # The workspace's own VAPID pair for this batch (its subscriptions were made with its
        # public key); otherwise the install's, loaded once per process.
        vapid, public_key, subject = self.vapid, self._public_key, self.subject
        if content.vapid is not None:
            vapid = vapid_key_load(private_key=content.vapid.private_key)
            public_key = content.vapid.public_key
            subject = content.vapid.subject or self.subject
        signer = (vapid, public_key, subject)
        try:
            renderers = {
                name: merge_template_compile(source=getattr(content, name)) for name in PAYLOAD_KEYS
            }
        except MarketerTemplateError as exc:
            # A template saved before the rules: fail its deliveries with the reason.
            return [Failed(m.delivery_id, TEMPLATE_INVALID, str(exc)[:500]) for m in messages]
        headers = {"Urgency": content.urgency or self.urgency}
        headers["Topic"] = content.topic or push_topic_default(content=content)
        ttl = self.ttl_s if content.ttl_s is None else content.ttl_s
        # A bound on the whole exchange too: a service trickling bytes never holds a worker long.
        timeout = aiohttp.ClientTimeout(
            total=2 * self.timeout_s, sock_connect=self.timeout_s, sock_read=self.timeout_s
        )
        outcomes: list[Outcome | None] = [None] * len(messages)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(messages)):
            queue.put_nowait(index)

        async def work() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                message = messages[index]
                fields = message.merge_fields
                try:
                    texts = {name: render(fields).strip() for name, render in renderers.items()}
                except MarketerTemplateError as exc:
                    outcomes[index] = Failed(message.delivery_id, TEMPLATE_INVALID, str(exc)[:500])
                    continue
                payload = json.dumps(texts, separators=(",", ":")).encode()
                outcomes[index] = await self._send_one(
                    message,
                    signer=signer,
                    payload=payload,
                    headers=headers,
                    ttl=ttl,
                    timeout=timeout,
                    sessions=sessions,
                )

        workers = min(self.concurrency, len(messages))
        await asyncio.gather(*(work() for _ in range(workers)))
        return [o for o in outcomes if o is not None]

    async def _send_one(  # noqa: PLR0911 - one return per kind of answer
        self,
        message: OutboundMessage,
        *,
        signer: tuple[Vapid02, str, str] | None = None,
        payload: bytes,
        headers: dict[str, str],
        ttl: int,
        timeout: aiohttp.ClientTimeout,
        sessions: dict[str, aiohttp.ClientSession],
    ) -> Outcome:
        delivery_id = message.delivery_id
        if message.push_keys is None:
            return Failed(delivery_id, "no_keys", "the subscription has no p256dh/auth keys")
        if len(payload) > MAX_PLAINTEXT_BYTES:
            return Failed(
                delivery_id,
                "payload_too_large",
                f"{len(payload)} bytes exceeds the {MAX_PLAINTEXT_BYTES}-byte push limit",
            )
        try:
            # Again at send time: the allow-list may have changed since the row was stored.
            push_endpoint_check(url=message.to)
        except OutboundRefused as exc:
            return Failed(delivery_id, "endpoint_refused", exc.reason[:500])
        parts = urlsplit(message.to)
        origin, host = f"{parts.scheme}://{parts.netloc}", parts.netloc
        backoff_until = _host_backoff.get(host, 0.0)
        if backoff_until > time.time():
            return Deferred(delivery_id, "host_backoff", f"{host} asked us to slow down",
                            backoff_until - time.time())  # fmt: skip
        session = sessions.get(origin)
        if session is None:
            session = sessions[origin] = outbound_session(
                limit=self.concurrency, allow=push_sandbox_allow()
            )
        subscription = {
            "endpoint": message.to,
            "keys": {"p256dh": message.push_keys.p256dh, "auth": message.push_keys.auth},
        }
        vapid, public_key, subject = signer or (self.vapid, self._public_key, self.subject)
        all_headers = {
            **headers,
            # Cached per (public key, origin): a workspace's pair never signs for another's.
            **vapid_headers(vapid=vapid, origin=origin, subject=subject, public_key=public_key),
        }
        try:
            pusher = WebPusher(subscription, aiohttp_session=_NoRedirects(session))
            response: Any = await pusher.send_async(
                payload, headers=all_headers, ttl=ttl, timeout=timeout
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            refusal = outbound_refusal(exc)
            if refusal is not None:
                # Refused at connect time (the name resolves to a private address): no request
                # left, and sending again would be refused again.
                return Failed(delivery_id, "endpoint_refused", refusal.reason[:500])
            text = f"{type(exc).__name__}: {exc}"[:500]
            # One rule for every provider and publisher (delivery/transport.py): a failure before
            # the request left is retried; after it, the push may have been delivered.
            if transport_error_sort(exc).never_left:
                return Deferred(delivery_id, "push_unreachable", text)
            return Unknown(delivery_id, "push_no_answer", text)
        except Exception as exc:  # pywebpush raises WebPushException for bad keys
            return Failed(delivery_id, "push_invalid", f"{type(exc).__name__}: {exc}"[:500])
        return self._outcome(delivery_id, host, response)

    @staticmethod
    def _outcome(delivery_id: int, host: str, response: Any) -> Outcome:
        status = int(response.status)
        if status in (200, 201, 202):
            return Sent(delivery_id, str(response.headers.get("Location", "")), "webpush")
        code = f"push_{status}"
        text = f"push service answered {status}"
        if status in (404, 410):
            return Suppressed(delivery_id, SuppressReason.SUBSCRIPTION_GONE, code, text)
        if status == 429:
            try:
                retry_after = float(response.headers.get("Retry-After", 60))
            except ValueError:
                retry_after = 60.0
            _host_backoff[host] = max(_host_backoff.get(host, 0.0), time.time() + retry_after)
            return Deferred(delivery_id, code, text, retry_after)
        if 300 <= status < 400:
            return Failed(
                delivery_id,
                "push_redirect",
                f"push service answered {status} (redirects are not followed): not sent",
            )
        if status >= 500:
            return Deferred(delivery_id, code, text)
        return Failed(delivery_id, code, text)


class _NoRedirects:
    """Hands pywebpush a session whose POSTs never follow redirects (pywebpush passes no
    ``allow_redirects``, and aiohttp follows them by default): a 3xx would send the push to an
    address nobody vetted."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._session.post(url, allow_redirects=False, **kwargs)


async def _sessions_close(sessions: dict[str, aiohttp.ClientSession]) -> None:
    await asyncio.gather(*(s.close() for s in sessions.values()))


def push_host_backoff_clear() -> None:
    """Forget every host back-off (tests; an operator after a push service recovers)."""
    _host_backoff.clear()
