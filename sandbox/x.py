"""Loopback fake of the X API v2 calls we use: POST /2/tweets, GET /2/users/{id}/tweets and
GET /2/users/me, answering errors as RFC 7807 problems like X does.

Tokens map to user ids: ``fake.add_user(token, user_id, username)``; any other token is treated
as a valid user "sandbox-<n>" unless it starts with "expired-" or "invalid-" (401). Like X, the
stored text has its links wrapped as t.co links and &, <, > HTML-escaped, so matching in
find_recent is tested against what X really returns. The base "timeout" fault with
``after_accept`` stores the post before hanging, which is the ambiguous case.

Per-token failures: ``fake.fail(token=..., status=403, detail="...duplicate content.")``;
over HTTP POST /__sandbox__/x-error {"token"?, "status", "detail"?, "remaining"?}.
"""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from re import Match
from typing import Any
from urllib.parse import parse_qs

from sandbox.base import FakeRequest, FakeResponse, FakeServer
from sandbox.path_faults import PathFaults
from sandbox.rules import global_rule_take, rule_take

PROBLEMS = {
    400: ("Invalid Request", "https://api.x.com/2/problems/invalid-request"),
    401: ("Unauthorized", "about:blank"),
    403: ("Forbidden", "about:blank"),
    429: ("Too Many Requests", "about:blank"),
    500: ("Internal Server Error", "about:blank"),
    503: ("Service Unavailable", "about:blank"),
}
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
_ids = itertools.count(1860000000000000000)
_URL = re.compile(r"https?://[^\s<>\"]+")


def problem(status: int, detail: str = "") -> FakeResponse:
    title, kind = PROBLEMS.get(status, ("Error", "about:blank"))
    body = {"title": title, "detail": detail or title, "type": kind, "status": status}
    headers = {"x-rate-limit-reset": str(int(time.time()) + 60)} if status == 429 else {}
    return FakeResponse(status, body, headers)


@dataclass
class Tweet:
    id: str
    author_id: str
    text: str
    created_at: float
    sent_text: str

    def public(self) -> dict[str, Any]:
        created = datetime.fromtimestamp(self.created_at, UTC)
        return {
            "id": self.id,
            "text": self.text,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{created.microsecond // 1000:03d}Z",
            "edit_history_tweet_ids": [self.id],
        }


@dataclass
class XErrorRule:
    status: int
    detail: str = ""
    remaining: int | None = None


class XFake(FakeServer, PathFaults):
    name = "x"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = threading.Lock()
        self.users: dict[str, tuple[str, str]] = {}
        self.tweets: list[Tweet] = []
        self._sent: set[tuple[str, str]] = set()
        self.token_errors: dict[str, XErrorRule] = {}
        self.global_error: XErrorRule | None = None
        PathFaults.__init__(self)
        super().__init__(host=host, port=port)

    def setup(self) -> None:
        self.route("POST", r"/2/tweets", self._create)
        self.route("GET", r"/2/users/me", self._me)
        self.route("GET", r"/2/users/(?P<user>\w+)/tweets", self._timeline)

    def add_user(self, token: str, user_id: str, username: str = "") -> None:
        with self._state:
            self.users[token] = (user_id, username or f"user{user_id}")

    def fail(
        self,
        *,
        status: int,
        token: str | None = None,
        detail: str = "",
        remaining: int | None = None,
    ) -> None:
        rule = XErrorRule(status=status, detail=detail, remaining=remaining)
        with self._state:
            if token is None:
                self.global_error = rule
            else:
                self.token_errors[token] = rule

    def clear_errors(self) -> None:
        with self._state:
            self.token_errors.clear()
            self.global_error = None

    def reset(self) -> None:
        super().reset()
        self.clear_errors()
        self.clear_path_faults()
        with self._state:
            self.tweets.clear()
            self._sent.clear()

    def tweets_by(self, user_id: str) -> list[Tweet]:
        with self._state:
            return [t for t in self.tweets if t.author_id == user_id]

    # --- plumbing ---------------------------------------------------------------------------------

    def _user(self, request: FakeRequest) -> tuple[str, str] | None:
        auth = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
        if not auth.lower().startswith("bearer "):
            return None
        token = auth.split(" ", 1)[1].strip()
        if not token or token.startswith(("expired-", "invalid-")):
            return None
        with self._state:
            return self.users.get(token) or (f"sandbox-{zlib.crc32(token.encode())}", "sandbox")

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        user = self._user(request)
        if user is None:
            return problem(401, "Unauthorized")
        auth = next(v for k, v in request.headers.items() if k.lower() == "authorization")
        rule = self._take_rule(auth.split(" ", 1)[1].strip())
        if rule is not None:
            return problem(rule.status, rule.detail)
        fault = self.take_path_fault(request.method, request.path)
        if fault is not None:
            return self.answer_with_fault(fault, lambda: FakeServer.dispatch(self, request))
        return super().dispatch(request)

    def _take_rule(self, token: str) -> XErrorRule | None:
        with self._state:
            rule = rule_take(self.token_errors, token)
            if rule is not None:
                return rule
            rule, self.global_error = global_rule_take(self.global_error)
            return rule

    def control(self, request: FakeRequest) -> FakeResponse:
        action = request.path.rstrip("/").rsplit("/", 1)[-1]
        if action == "x-error" and request.method == "POST":
            try:
                payload = request.json() or {}
                self.fail(
                    status=int(payload["status"]),
                    token=payload.get("token"),
                    detail=str(payload.get("detail") or ""),
                    remaining=payload.get("remaining"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                return FakeResponse(400, {"error": f"expected a JSON object with status: {exc}"})
            return FakeResponse(200, {"ok": True})
        if action == "x-error" and request.method == "DELETE":
            self.clear_errors()
            return FakeResponse(200, {"cleared": True})
        if action == "posts" and request.method == "GET":
            with self._state:
                return FakeResponse(200, {"posts": [asdict(t) for t in self.tweets[-200:]]})
        return super().control(request)

    # --- routes -----------------------------------------------------------------------------------

    def _create(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        user = self._user(request) or ("", "")  # dispatch answered 401 to unknown tokens
        try:
            payload = request.json()
        except ValueError:
            payload = None
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            return problem(400, "The `text` field is required and must be a non-empty string.")
        with self._state:
            if (user[0], text) in self._sent:
                return problem(403, DUPLICATE_DETAIL)
            self._sent.add((user[0], text))
            tweet_id = str(next(_ids))
            stored = html.escape(
                _URL.sub(lambda _: f"https://t.co/{tweet_id[-10:]}", text), quote=False
            )
            tweet = Tweet(tweet_id, user[0], stored, time.time(), text)
            self.tweets.append(tweet)
        return FakeResponse(
            201,
            {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}},
        )

    def _me(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        user = self._user(request) or ("", "")
        return FakeResponse(200, {"data": {"id": user[0], "name": user[1], "username": user[1]}})

    def _timeline(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        query = parse_qs(request.query)
        start = query.get("start_time", [""])[0]
        try:
            since = (
                datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() if start else 0.0
            )
        except ValueError:
            return problem(400, "Invalid start_time")
        limit = int(query.get("max_results", ["10"])[0] or 10)
        if not 5 <= limit <= 100:
            return problem(400, "The `max_results` query parameter value is not between 5 and 100")
        tweets = [
            t.public() for t in reversed(self.tweets_by(match["user"])) if t.created_at >= since
        ]
        tweets = tweets[:limit]
        meta: dict[str, Any] = {"result_count": len(tweets)}
        if tweets:
            meta.update(newest_id=tweets[0]["id"], oldest_id=tweets[-1]["id"])
            return FakeResponse(200, {"data": tweets, "meta": meta})
        return FakeResponse(200, {"meta": meta})
