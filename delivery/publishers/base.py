"""The publisher interface: one small class per social network, one error taxonomy for all.

A publisher knows one network's HTTP API and nothing about models: the caller hands it a
SocialAccountRef (ids plus a plain access token it decrypted) and a SocialPostRequest, and gets
back a PublishResult or one of four errors. The fixed pipeline (timeouts, transport failures,
token hygiene) lives in HttpPublisher; a network fills in URLs, payloads and response parsing.

Taxonomy (what the caller does):
- PublishTransient: nothing was done, or the network said it failed; retry with back-off.
- PublishThrottled: the network asked us to slow down; retry after ``retry_after_s``.
- PublishPermanent: retrying cannot help (expired token, policy, duplicate, bad request).
- PublishUnknown: the request left and no answer came back; the post may exist. Call
  ``find_recent`` before any retry, never publish blind (ARCHITECTURE invariant 4).
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import requests
from django.conf import settings

from delivery.transport import transport_error_sort

logger = logging.getLogger(__name__)

FACEBOOK = "facebook"
INSTAGRAM = "instagram"
X = "x"
WHATSAPP = "whatsapp"
NETWORKS: tuple[str, ...] = (FACEBOOK, INSTAGRAM, X, WHATSAPP)

OutcomeKind = Literal["ok", "transient", "throttled", "permanent", "unknown"]


# --- plain data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SocialAccountRef:
    """What a publisher needs to act as one account. The token is plain text, already decrypted
    by the caller; ``repr=False`` keeps it out of reprs, tracebacks' locals and log lines."""

    network: str
    access_token: str = field(repr=False)
    page_id: str = ""
    ig_user_id: str = ""
    x_user_id: str = ""
    phone_number_id: str = ""
    display_name: str = ""
    # Empty: the network's base URL setting. Set per account only for tests or a regional host.
    base_url: str = ""

    @property
    def external_id(self) -> str:
        """The id that names this account on its network (used for health counting and logs)."""
        return {
            FACEBOOK: self.page_id,
            INSTAGRAM: self.ig_user_id,
            X: self.x_user_id,
            WHATSAPP: self.phone_number_id,
        }.get(self.network, "")

    @property
    def key(self) -> str:
        return f"{self.network}:{self.external_id}"


def post_fingerprint(*, text: str, link: str = "", image_url: str = "") -> str:
    """A stable digest of a post's content, for logs and matching an ambiguous attempt."""
    digest = hashlib.sha256("\x1f".join((text, link, image_url)).encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class SocialPostRequest:
    text: str
    link: str = ""
    image_url: str = ""
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            fingerprint = post_fingerprint(text=self.text, link=self.link, image_url=self.image_url)
            object.__setattr__(self, "fingerprint", fingerprint)


@dataclass(frozen=True)
class PublishResult:
    network: str
    external_id: str
    # True when the id came from find_recent after an ambiguous attempt, not from a fresh post.
    reconciled: bool = False


@dataclass(frozen=True)
class ConnectionStatus:
    ok: bool
    detail: str
    display_name: str = ""
    error: PublishError | None = None


# --- errors ---------------------------------------------------------------------------------------


class PublishError(Exception):
    """Root of the publisher errors. ``detail`` is safe to show and log: never a token."""

    kind: ClassVar[OutcomeKind] = "transient"

    def __init__(
        self,
        detail: str,
        *,
        network: str = "",
        http_status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        trace_id: str = "",
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.network = network
        self.http_status = http_status
        self.code = code
        self.subcode = subcode
        self.trace_id = trace_id

    def __str__(self) -> str:
        parts = [f"{self.network}: {self.detail}" if self.network else self.detail]
        if self.code is not None:
            parts.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode else ""))
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        return " ".join([parts[0], *(f"[{p}]" for p in parts[1:])])

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which Exception's default pickling cannot
        # replay; Celery pickles exceptions that cross process boundaries.
        return (_restore_error, (type(self), self.detail, dict(self.__dict__)))

    def redact(self, *secrets: str) -> None:
        self.detail = redact(self.detail, *secrets)
        self.args = (self.detail,)

    @property
    def counts_toward_outage(self) -> bool:
        """Whether this failure says something about the network's health (see health.py)."""
        return self.kind in ("transient", "unknown")


def _restore_error(cls: type[PublishError], detail: str, state: dict[str, Any]) -> PublishError:
    error = cls.__new__(cls)
    Exception.__init__(error, detail)
    error.__dict__.update(state)
    return error


class PublishTransient(PublishError):
    kind = "transient"


class PublishThrottled(PublishError):
    kind = "throttled"

    def __init__(self, detail: str, *, retry_after_s: float, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after_s = retry_after_s


class PublishPermanent(PublishError):
    kind = "permanent"

    def __init__(self, detail: str, *, needs_reauth: bool = False, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        # The marketer must reconnect the account (expired, revoked or under-scoped token).
        self.needs_reauth = needs_reauth


class PublishUnknown(PublishError):
    kind = "unknown"


# --- text helpers shared by the networks ---------------------------------------------------------

_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"]+")
_SPACE = re.compile(r"\s+")


def text_normalized(text: str, *, url_pattern: re.Pattern[str] = _URL) -> str:
    """Text as compared after a round trip: networks rewrite links (X wraps them in t.co),
    escape HTML entities (X) and may trim whitespace, so links become a placeholder, entities
    are unescaped and runs of space collapse."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    return _SPACE.sub(" ", url_pattern.sub("<url>", text)).strip()


def text_with_link(text: str, link: str) -> str:
    """The post body for networks without a separate link field: the link appended once."""
    if not link or link in text:
        return text
    return f"{text.rstrip()}\n{link}" if text.strip() else link


def redact(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


# --- the interface --------------------------------------------------------------------------------


class Publisher:
    """One social network. Subclasses set ``network`` and implement the three operations."""

    network: ClassVar[str] = ""

    def publish(self, *, account: SocialAccountRef, post: SocialPostRequest) -> PublishResult:
        """Post once. Raises PublishTransient/Throttled/Permanent/Unknown."""
        raise NotImplementedError

    def find_recent(
        self, *, account: SocialAccountRef, post: SocialPostRequest, since: datetime
    ) -> str | None:
        """The external id of a post with this content created at or after ``since``, if any.

        Called after PublishUnknown, before any retry. Raises PublishError when the check
        itself fails: an unanswered check is not a "no"."""
        raise NotImplementedError

    def check_connection(self, *, account: SocialAccountRef) -> ConnectionStatus:
        """Whether the token works for this account; never raises for network answers."""
        raise NotImplementedError

    def content_problems(self, *, post: SocialPostRequest) -> list[str]:
        """Human-readable reasons this network would reject the post (empty when fine)."""
        return []


@dataclass(frozen=True)
class HttpCall:
    """One request as a publisher describes it; ``sends`` marks non-idempotent calls, whose
    lost answers are ambiguous (the network may have acted)."""

    method: str
    url: str
    sends: bool
    json: Mapping[str, Any] | None = None
    params: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None


class HttpPublisher(Publisher):
    """The fixed request pipeline: explicit (connect, read) timeouts, a bearer token in a
    header (never in the URL, so it cannot leak through exception texts or access logs), and
    transport failures sorted into the taxonomy. Networks implement ``error_from_response``."""

    def __init__(self, *, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()

    # --- hooks ------------------------------------------------------------------------------------

    def base_url(self, account: SocialAccountRef) -> str:
        raise NotImplementedError

    def error_from_response(self, response: requests.Response, *, sends: bool) -> PublishError:
        raise NotImplementedError

    # --- pipeline ---------------------------------------------------------------------------------

    @property
    def timeout(self) -> tuple[float, float]:
        return (settings.SOCIAL_CONNECT_TIMEOUT_S, settings.SOCIAL_READ_TIMEOUT_S)

    def call(self, account: SocialAccountRef, call: HttpCall) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {account.access_token}"}
        try:
            response = self.session.request(
                call.method,
                call.url,
                headers=headers,
                json=call.json,
                params=call.params,
                data=call.data,
                timeout=self.timeout,
                # APIs do not redirect; following one would turn a POST into a GET.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            error = self.error_from_transport(exc, sends=call.sends)
            self.log_failure(account, call, error)
            raise error from None
        if response.status_code >= 300:
            error = self.error_from_response(response, sends=call.sends)
            error.redact(account.access_token)
            self.log_failure(account, call, error)
            raise error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Accepted but unreadable: for a send we cannot know the id, so it is ambiguous.
            kind = PublishUnknown if call.sends else PublishTransient
            error = kind(
                "answered 2xx without a JSON object",
                network=self.network,
                http_status=response.status_code,
            )
            self.log_failure(account, call, error)
            raise error
        return body

    def error_from_transport(self, exc: requests.RequestException, *, sends: bool) -> PublishError:
        """Sort a failure below HTTP with delivery.transport's one rule (the providers use it
        too): did the request certainly not leave, or might it have?"""
        transport_errors = (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        )
        if not isinstance(exc, transport_errors):
            # InvalidURL, InvalidHeader and the like: the request was never made, and making it
            # again will not help.
            return PublishPermanent(
                f"request could not be made ({type(exc).__name__})", network=self.network
            )
        verdict = transport_error_sort(exc)
        if verdict.never_left:
            return PublishTransient(
                f"could not reach the API ({verdict.reason})", network=self.network
            )
        if sends:
            return PublishUnknown(
                f"no answer after the request was sent ({verdict.reason}); "
                "check recent posts before any retry",
                network=self.network,
            )
        return PublishTransient(f"no answer ({verdict.reason})", network=self.network)

    def log_failure(self, account: SocialAccountRef, call: HttpCall, error: PublishError) -> None:
        # %s arguments only, ids in extra; the URL path holds ids but never the token.
        logger.warning(
            "%s %s %s failed: %s",
            self.network,
            call.method,
            call.url.split("?", 1)[0],
            error,
            extra={"network": self.network, "account": account.key, "outcome": error.kind},
        )


def retry_after_seconds(headers: Mapping[str, str], *, default: float) -> float:
    """Retry-After in seconds (the HTTP-date form is rare for APIs and falls back to default)."""
    value = headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
