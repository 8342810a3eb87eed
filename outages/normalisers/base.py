"""The fixed pipeline every monitor kind plugs into: authenticate, parse, normalise.

A kind is one module defining a Normaliser subclass; it fills three hooks and passes the shared
contract test in tests/outages/test_normaliser_contract.py with its samples.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import QueryDict
from django.utils.dateparse import parse_datetime

from continuity.inputs import InputRejected, json_parse, text_storable, unix_seconds_parse


class Rejected(Exception):
    """A request refused with a 4xx; ``verdict`` and ``reason`` go on the receipt."""

    verdict = "invalid"
    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Malformed(Rejected):
    verdict = "malformed"


class Invalid(Rejected):
    verdict = "invalid"


class Unauthorized(Rejected):
    verdict = "unauthorized"
    status_code = 401


class Replayed(Rejected):
    verdict = "replayed"
    status_code = 401


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    headers: Mapping[str, str]  # case-insensitive (Django's HttpHeaders)
    query: Mapping[str, str]
    body: bytes
    content_type: str
    received_at: datetime


@dataclass(frozen=True)
class RawSignal:
    """One alert as the sender described it, before mapping to a network."""

    firing: bool
    incident_key: str
    attributes: dict[str, str]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""
    link: str = ""
    network: str = ""  # only kinds that name the network themselves (generic)
    # A resolve that only releases a firing we already hold, never remembered as an early
    # resolve (one payload reporting on signals it does not own: Statuspage incident components).
    release_only: bool = False


@dataclass
class Normalised:
    signals: list[RawSignal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Normaliser:
    """Base class of a monitor kind. Subclasses set ``kind`` and ``auth`` and fill the hooks."""

    kind: ClassVar[str]
    auth: ClassVar[str]  # "bearer" (bearer or basic), "url_token", or "hmac"
    # A delivery id seen before: True answers 200 "duplicate" (the sender redelivers the same
    # bytes under the same id), False refuses it as a replay (401: the id is a signature).
    redelivery_is_duplicate: ClassVar[bool] = False
    # How often this sender repeats a firing alert by default, in seconds (None: it does not),
    # for sources that leave MonitorSource.repeat_interval_s empty: silent holders.
    default_repeat_interval_s: ClassVar[int | None] = None

    def authenticate(
        self, *, request: WebhookRequest, secrets: list[str], options: Mapping[str, Any]
    ) -> str:
        """Raise Unauthorized/Replayed, or return a delivery id to guard against replay ("")."""
        if self.auth == "bearer":
            check_bearer_or_basic(request=request, secrets=secrets)
        elif self.auth == "url_token":
            check_url_token(request=request, secrets=secrets)
        else:  # pragma: no cover - hmac kinds override authenticate
            raise NotImplementedError
        return ""

    def parse(self, *, request: WebhookRequest) -> Any:
        return body_decode(request=request)

    def normalise(self, *, payload: Any, options: Mapping[str, Any]) -> Normalised:
        raise NotImplementedError


# --- shared helpers ------------------------------------------------------------------------------


def secrets_match(candidate: str, secrets: Iterable[str]) -> bool:
    # Compare against every secret, not stopping at the first match, so timing says nothing.
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(candidate.encode(), secret.encode())
    return ok


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check_bearer_or_basic(*, request: WebhookRequest, secrets: list[str]) -> None:
    import base64
    import binascii

    header = request.headers.get("Authorization", "")
    if not header:
        raise Unauthorized("missing Authorization header (Bearer <secret> or Basic)")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        candidate = value
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Basic credentials are not valid base64") from None
        # Any user name: the password is the source's secret.
        candidate = decoded.partition(":")[2]
    else:
        raise Unauthorized(f"unsupported Authorization scheme {scheme!r}: use Bearer or Basic")
    if not secrets_match(candidate, secrets):
        raise Unauthorized("credentials do not match this source's secret")


def check_url_token(*, request: WebhookRequest, secrets: list[str]) -> None:
    token = request.query.get("token", "")
    if not token:
        raise Unauthorized("missing ?token=<secret> in the URL")
    if not secrets_match(token, secrets):
        raise Unauthorized("token does not match this source's secret")


def check_timestamp(*, timestamp: str, now: datetime, tolerance_s: int) -> None:
    try:
        # Decimal seconds of a sane length only: int("9" * 400) parses, then overflows the
        # float subtraction below.
        sent = unix_seconds_parse(value=timestamp)
    except InputRejected:
        raise Unauthorized(f"timestamp {timestamp[:40]!r} is not a unix time") from None
    age = now.timestamp() - sent
    if abs(age) > tolerance_s:
        raise Replayed(f"stale timestamp: {int(age)} s away from now (tolerance {tolerance_s} s)")


def body_decode(*, request: WebhookRequest) -> dict[str, Any]:
    """JSON (the default) or a form whose `data`/`payload` field holds JSON; always an object."""
    content_type = request.content_type.split(";")[0].strip().lower()
    # curl -d (and some senders) label a JSON body as a form: a body that opens like a JSON
    # object is read as JSON whatever its label says.
    looks_json = request.body.lstrip()[:1] == b"{"
    if content_type == "application/x-www-form-urlencoded" and not looks_json:
        try:
            text = request.body.decode("utf-8")
            fields = dict(
                parse_qsl(
                    text,
                    keep_blank_values=True,
                    strict_parsing=bool(text),
                    max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
                )
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(f"form body is not valid urlencoded UTF-8: {exc}") from None
        return _form_fields(fields)
    if content_type == "multipart/form-data":
        return _form_fields(_multipart_fields(request))
    if not request.body.strip():
        raise Malformed("empty body: expected a JSON object")
    return _json_object(request.body, where="body")


def _json_object(raw: bytes | str, *, where: str) -> dict[str, Any]:
    try:
        # The sender authenticated: NUL in an otherwise good alert is replaced, not refused, so
        # an outage report is never lost to a stray byte (the receipt keeps what was sent).
        value = json_parse(raw=raw, nul="replace", where=where)
    except InputRejected as exc:
        raise Malformed(exc.detail) from None
    if not isinstance(value, dict):
        raise Malformed(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _form_fields(fields: dict[str, str]) -> dict[str, Any]:
    for name in ("data", "payload", "json"):
        if name in fields:
            return _json_object(fields[name], where=f"form field {name!r}")
    return {text_storable(k): text_storable(v) for k, v in fields.items()}


def _multipart_fields(request: WebhookRequest) -> dict[str, str]:
    from django.core.files.uploadhandler import MemoryFileUploadHandler
    from django.http.multipartparser import MultiPartParser, MultiPartParserError

    meta = {"CONTENT_TYPE": request.content_type, "CONTENT_LENGTH": str(len(request.body))}
    try:
        post, _files = MultiPartParser(
            meta, BytesIO(request.body), [MemoryFileUploadHandler()], "utf-8"
        ).parse()
    except (MultiPartParserError, SuspiciousOperation) as exc:
        # SuspiciousOperation: too many fields or parts; Django would answer it 400 anyway, but
        # here the receipt gets the reason instead of an error verdict.
        raise Malformed(f"multipart body could not be parsed: {exc}") from None
    if not isinstance(post, QueryDict):  # pragma: no cover - Django always returns a QueryDict
        raise Malformed("multipart body could not be parsed")
    return {k: str(post.get(k, "")) for k in post}


def parse_time(value: Any) -> datetime | None:  # noqa: PLR0911
    """ISO 8601 (naive means UTC) or unix seconds/milliseconds; Go's zero time means none."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e12 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise Invalid(f"time {str(value)[:40]} is out of range") from None
    if isinstance(value, str):
        text = value.strip()
        if text.isdecimal() and len(text) <= 16:
            return parse_time(int(text))
        try:
            parsed = parse_datetime(text.replace(" ", "T", 1) if "T" not in text else text)
        except ValueError:
            return None
        if parsed is None or parsed.year <= 1:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """{"labels": {"service": "x"}} -> {"labels.service": "x"}, for mapping rules."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), inner))
    elif value is not None and not isinstance(value, list):
        out[prefix] = str(value)
    return out


def require(payload: Mapping[str, Any], path: str, kind: str) -> Any:
    """Follow a dotted path or raise Invalid naming the missing field."""
    current: Any = payload
    for part in path.split("."):
        if not isinstance(current, Mapping) or current.get(part) in (None, ""):
            raise Invalid(f"{kind} body is missing required field {path!r}")
        current = current[part]
    return current


def text(value: Any, limit: int = 2000) -> str:
    return "" if value is None else str(value)[:limit]
