"""Request and task ids on every log line.

The id lives in a ContextVar, set by the middleware for a request and by Celery's task signals for a
task, and a logging filter copies it onto each record so both formatters can print it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

_context_id: ContextVar[str] = ContextVar("continuity_context_id", default="-")
# An incoming X-Request-ID is echoed only when it is short and plain, so a client cannot inject
# line breaks or megabytes into our logs.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def bind_context_id(value: str) -> None:
    _context_id.set(value)


def current_context_id() -> str:
    return _context_id.get()


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context_id = _context_id.get()
        return True


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = _context_id.set(f"req:{request_id}")
        try:
            response = self.get_response(request)
        finally:
            _context_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class ProviderCallbackAccessFilter(logging.Filter):
    """The dev server's access line for a provider callback that went well, at DEBUG.

    Twilio, SendGrid and the push service call back once per message and status, so at INFO the
    log was mostly "POST /webhooks/twilio/status/ 200". Refused or failed callbacks (4xx, 5xx)
    keep their level: those are the ones to read."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if (
            not isinstance(status, int)
            or status >= 400
            or "/webhooks/" not in _request_line(record)
        ):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _request_line(record: logging.LogRecord) -> str:
    args = record.args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return str(record.msg)
