"""Base for the loopback provider fakes: a threaded HTTP/1.1 server with failure switches.

Each fake (SendGrid, Twilio, Graph, ...) subclasses FakeServer and registers routes. The same fake
serves tests, benchmarks and the `make run` demo, so its failure switches are reachable both in
process (``server.set_fault(...)``) and over HTTP (``POST /__sandbox__/fault``), which is how the
admin and a test running workers in other processes steer a fake they do not hold.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qs

FaultMode = Literal["ok", "slow", "error", "rate_limit", "timeout", "reset", "refuse"]
FAULT_MODES: tuple[str, ...] = ("ok", "slow", "error", "rate_limit", "timeout", "reset", "refuse")
CONTROL_PREFIX = "/__sandbox__/"


@dataclass
class Fault:
    """How the fake misbehaves. ``remaining`` limits it to the next N requests (None: until reset).

    slow: answer normally after ``delay_s``; error: answer ``status`` with ``body``;
    rate_limit: 429 with Retry-After ``retry_after_s``; timeout: read the request, act on it when
    ``after_accept`` is set (the ambiguous case), then hold the connection for ``delay_s`` and close
    it unanswered; reset: close the connection without a response; refuse: stop listening, so new
    connections are refused.
    """

    mode: FaultMode = "ok"
    delay_s: float = 0.0
    status: int = 500
    body: str = ""
    retry_after_s: int = 1
    after_accept: bool = False
    remaining: int | None = None


@dataclass
class FakeRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)
    # The status the fake answered with (0 until answered): the inbox lists accepted ones only.
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class FakeResponse:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, dict | list):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        return self.body, headers


Route = Callable[[FakeRequest, "re.Match[str]"], FakeResponse]


class FakeServer:
    """A loopback HTTP fake. Subclasses call ``self.route(method, pattern, handler)`` in setup()."""

    name: ClassVar[str] = "fake"
    max_body_bytes: ClassVar[int] = 32 * 1024 * 1024

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._lock = threading.Lock()
        self._fault = Fault()
        self.received: list[FakeRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.setup()

    # --- extension points -------------------------------------------------------------------------

    def setup(self) -> None:
        """Register routes here."""

    def record(self, request: FakeRequest) -> bool:
        """Whether to keep this request in ``received`` (a fake under load may keep only counts)."""
        return True

    def fault_response(self, fault: Fault) -> FakeResponse:
        """The answer for an ``error`` or ``rate_limit`` fault, in the provider's error shape."""
        if fault.mode == "rate_limit":
            headers = {"Retry-After": str(fault.retry_after_s)}
            return FakeResponse(429, fault.body or {"error": "rate limited"}, headers)
        return FakeResponse(fault.status, fault.body or {"error": "sandbox fault"})

    def control_extra(self, action: str, request: FakeRequest) -> FakeResponse | None:
        """Extra ``/__sandbox__/<action>`` endpoints of one fake; None: not one of them."""
        return None

    def inbox_messages(self) -> list[dict[str, Any]]:
        """What the fake accepted, one entry per message a person would get, oldest first:
        ``kind``, ``at`` (epoch seconds), ``to``, ``title`` and ``body`` (whole, never cut).
        By default each accepted request is one message (a social post); providers that take
        many messages per request (SendGrid) or keep decrypted payloads (push) override it.
        Refused requests (a 404 for an unknown route, a 4xx) are not messages."""
        with self._lock:
            accepted = [r for r in self.received if 200 <= r.status < 300]
        return [
            {
                "kind": "request",
                "at": r.received_at,
                "to": "",
                "title": f"{r.method} {r.path}",
                "body": r.body.decode("utf-8", "replace"),
            }
            for r in accepted
        ]

    def _messages_page(self, request: FakeRequest) -> FakeResponse:
        """``GET /__sandbox__/messages?offset=&limit=``: a page of messages, newest first, and
        how many there are in all."""
        messages = self.inbox_messages()
        offset = _query_int(request.query, "offset", 0, low=0, high=10**9)
        limit = _query_int(request.query, "limit", 20, low=0, high=100)
        page = messages[::-1][offset : offset + limit]
        return FakeResponse(200, {"name": self.name, "count": len(messages), "items": page})

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, method: str, pattern: str, handler: Route) -> None:
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def start(self) -> Self:
        handler_class = _make_handler(self)
        self._httpd = _Server((self.host, self.port or self._requested_port), handler_class)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- failure switches -------------------------------------------------------------------------

    def set_fault(self, fault: Fault | None = None, **kwargs: Any) -> None:
        new = fault or Fault(**kwargs)
        with self._lock:
            self._fault = new
        # Refusing means nothing listens on the port; going back to any other mode listens again
        # on the same port, so clients configured with the URL keep working.
        if new.mode == "refuse" and self._httpd is not None:
            self.stop()
        elif new.mode != "refuse" and self._httpd is None:
            self.start()

    def clear_fault(self) -> None:
        self.set_fault(Fault())

    @property
    def fault(self) -> Fault:
        with self._lock:
            return self._fault

    def take_fault(self) -> Fault:
        """The fault for the request being served, counting it down when it is limited."""
        with self._lock:
            fault = self._fault
            if fault.mode == "ok":
                return fault
            if fault.remaining is not None:
                if fault.remaining <= 0:
                    self._fault = Fault()
                    return self._fault
                fault.remaining -= 1
            return Fault(**asdict(fault))

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._fault = Fault()

    def requests_to(self, pattern: str) -> list[FakeRequest]:
        compiled = re.compile(pattern)
        with self._lock:
            return [r for r in self.received if compiled.search(r.path)]

    # --- dispatch ---------------------------------------------------------------------------------

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler(request, match)
        return FakeResponse(404, {"error": f"{self.name} fake has no route {request.path}"})

    def control(self, request: FakeRequest) -> FakeResponse:  # noqa: PLR0911 - one per action
        action = request.path[len(CONTROL_PREFIX) :].strip("/")
        if action == "fault" and request.method == "POST":
            try:
                payload = request.json() or {}
                if payload.get("mode", "ok") not in FAULT_MODES:
                    raise ValueError(f"mode must be one of {FAULT_MODES}")
                fault = Fault(**payload)
            except (ValueError, TypeError) as exc:
                return FakeResponse(400, {"error": str(exc)})
            if fault.mode == "refuse":
                return FakeResponse(400, {"error": "refuse is only settable in process"})
            self.set_fault(fault)
            return FakeResponse(200, asdict(fault))
        if action == "received" and request.method == "GET":
            with self._lock:
                items = [
                    {
                        "method": r.method,
                        "path": r.path,
                        "received_at": r.received_at,
                        "body": r.body[:4096].decode("utf-8", "replace"),
                    }
                    for r in self.received[-200:]
                ]
            listing = {"name": self.name, "count": len(self.received), "items": items}
            return FakeResponse(200, listing)
        if action == "messages" and request.method == "GET":
            return self._messages_page(request)
        if action == "reset" and request.method == "POST":
            self.reset()
            return FakeResponse(200, {"reset": True})
        extra = self.control_extra(action, request)
        if extra is not None:
            return extra
        return FakeResponse(404, {"error": f"unknown sandbox control {action!r}"})


def _query_int(query: str, name: str, default: int, *, low: int, high: int) -> int:
    values = parse_qs(query).get(name)
    try:
        value = int(values[0]) if values else default
    except ValueError:
        value = default
    return min(max(value, low), high)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def _make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"continuity-sandbox-{fake.name}"
        # Headers and body go out in two writes; with Nagle on, the second waits for the
        # client's delayed ACK, stalling every response ~40 ms (measured: 42 vs 1,239 req/s).
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; with Nagle on, the second waits for the
            # client's delayed ACK (40 ms on Linux), capping a keep-alive client at ~25 req/s.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            # Quiet by default: tests and benchmarks read what was received, not access logs.
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > fake.max_body_bytes:
                self._send(FakeResponse(413, {"error": "body too large"}), close=True)
                return
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            request = FakeRequest(self.command, path, query, dict(self.headers.items()), body)
            if path.startswith(CONTROL_PREFIX):
                self._send(fake.control(request))
                return
            fault = fake.take_fault()
            if fault.mode == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.mode == "timeout":
                if fault.after_accept:
                    self._record_and_dispatch(request)
                time.sleep(fault.delay_s or 5.0)
                self.close_connection = True
                return
            if fault.mode in ("error", "rate_limit"):
                self._send(fake.fault_response(fault))
                return
            if fault.mode == "slow":
                time.sleep(fault.delay_s)
            self._send(self._record_and_dispatch(request))

        def _record_and_dispatch(self, request: FakeRequest) -> FakeResponse:
            if fake.record(request):
                with fake._lock:
                    fake.received.append(request)
            try:
                response = fake.dispatch(request)
            except Exception as exc:  # a broken fake answers 500, as a provider would
                response = FakeResponse(500, {"error": f"{type(exc).__name__}: {exc}"})
            request.status = response.status
            return response

        def _send(self, response: FakeResponse, *, close: bool = False) -> None:
            body, headers = response.encoded()
            self.send_response(response.status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler
