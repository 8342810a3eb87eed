"""Loopback fake of the Graph API parts we use: Page feed, Instagram containers and
media_publish, WhatsApp Cloud API messages, and the reads behind find_recent and the
connection check. Errors use Graph's JSON shape so the real client code classifies them.

Besides the base failure switches (slow, 5xx, 429, timeouts, reset, refuse) it can answer a
given Graph error per token or per account id, which is how one expired token or a network-wide
"code 2 for everything" is produced:

    fake.fail(token="t1", code=190, subcode=463)         # one token expired
    fake.fail(account="page-1", code=368)                # one page blocked by policy
    fake.fail(code=2, status=500)                        # every call: temporary outage
    fake.set_fault(graph_fault(2))                       # the same through the base switch

Tokens starting with "expired-" answer 190/463 and "invalid-" 190/467 without any set-up.
Over HTTP: POST /__sandbox__/graph-error {"token"|"account"?, "code", "subcode"?, "status"?,
"remaining"?}, DELETE the same path to clear, GET /__sandbox__/posts for what was published.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from re import Match
from typing import Any
from urllib.parse import parse_qs

from sandbox.base import FakeRequest, FakeResponse, FakeServer, Fault
from sandbox.path_faults import PathFaults
from sandbox.rules import global_rule_take, rule_take

GRAPH_MESSAGES = {
    1: ("An unknown error occurred", "OAuthException", 500),
    2: (
        "An unexpected error has occurred. Please retry your request later.",
        "OAuthException",
        500,
    ),
    4: ("(#4) Application request limit reached", "OAuthException", 400),
    17: ("(#17) User request limit reached", "OAuthException", 400),
    32: ("(#32) Page request limit reached", "OAuthException", 400),
    100: ("(#100) Invalid parameter", "OAuthException", 400),
    190: ("Error validating access token", "OAuthException", 400),
    341: ("(#341) Application limit reached", "OAuthException", 400),
    368: (
        "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
        "OAuthException",
        400,
    ),
    506: ("(#506) Duplicate status message", "OAuthException", 400),
    613: ("(#613) Calls to this api have exceeded the rate limit.", "OAuthException", 400),
    130429: ("(#130429) Rate limit hit", "OAuthException", 400),
}
_ids = itertools.count(17841400000000000)


def graph_error_body(code: int, subcode: int | None = None, message: str = "") -> dict[str, Any]:
    default_message, kind, _ = GRAPH_MESSAGES.get(
        code, (f"(#{code}) Graph error", "OAuthException", 400)
    )
    error: dict[str, Any] = {
        "message": message or default_message,
        "type": kind,
        "code": code,
        "fbtrace_id": f"Sbx{next(_ids) % 10**8:08d}",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if code in (1, 2):
        error["is_transient"] = True
    return {"error": error}


def graph_fault(code: int, *, subcode: int | None = None, remaining: int | None = None) -> Fault:
    """A base-switch fault that answers every request with this Graph error."""
    status = GRAPH_MESSAGES.get(code, ("", "", 400))[2]
    body = json.dumps(graph_error_body(code, subcode))
    return Fault(mode="error", status=status, body=body, remaining=remaining)


@dataclass
class GraphErrorRule:
    code: int
    subcode: int | None = None
    status: int | None = None
    remaining: int | None = None


@dataclass
class SandboxPost:
    network: str
    account: str
    id: str
    text: str
    created_time: float
    link: str = ""
    image_url: str = ""
    to: str = ""

    def graph_time(self) -> str:
        return datetime.fromtimestamp(self.created_time, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Container:
    id: str
    ig_user: str
    image_url: str
    caption: str
    polls_left: int
    status_code: str = "IN_PROGRESS"


class GraphFake(FakeServer, PathFaults):
    name = "graph"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, version: str = "v24.0") -> None:
        self.version = version
        self._state = threading.Lock()
        self.posts: list[SandboxPost] = []
        self.containers: dict[str, Container] = {}
        self.token_errors: dict[str, GraphErrorRule] = {}
        self.account_errors: dict[str, GraphErrorRule] = {}
        self.global_error: GraphErrorRule | None = None
        # How many status polls a new container answers IN_PROGRESS before FINISHED.
        self.container_polls = 1
        PathFaults.__init__(self)
        super().__init__(host=host, port=port)

    # --- set-up -----------------------------------------------------------------------------------

    def setup(self) -> None:
        v = r"/(?P<version>v\d+\.\d+)"
        self.route("POST", rf"{v}/(?P<obj>[\w.-]+)/feed", self._feed_post)
        self.route("GET", rf"{v}/(?P<obj>[\w.-]+)/(?:feed|posts)", self._feed_list)
        self.route("POST", rf"{v}/(?P<obj>[\w.-]+)/media", self._media_create)
        self.route("GET", rf"{v}/(?P<obj>[\w.-]+)/media", self._media_list)
        self.route("POST", rf"{v}/(?P<obj>[\w.-]+)/media_publish", self._media_publish)
        self.route("POST", rf"{v}/(?P<obj>[\w.-]+)/messages", self._messages)
        self.route("GET", rf"{v}/(?P<obj>[\w.-]+)", self._object)

    def fail(
        self,
        *,
        code: int,
        token: str | None = None,
        account: str | None = None,
        subcode: int | None = None,
        status: int | None = None,
        remaining: int | None = None,
    ) -> None:
        rule = GraphErrorRule(code=code, subcode=subcode, status=status, remaining=remaining)
        with self._state:
            if token is not None:
                self.token_errors[token] = rule
            elif account is not None:
                self.account_errors[account] = rule
            else:
                self.global_error = rule

    def clear_errors(self) -> None:
        with self._state:
            self.token_errors.clear()
            self.account_errors.clear()
            self.global_error = None

    def reset(self) -> None:
        super().reset()
        self.clear_errors()
        self.clear_path_faults()
        with self._state:
            self.posts.clear()
            self.containers.clear()

    def posts_for(self, account: str) -> list[SandboxPost]:
        with self._state:
            return [p for p in self.posts if p.account == account]

    # --- request plumbing -------------------------------------------------------------------------

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        token = _token(request)
        if not token:
            return _graph_answer(190, None, None, "An active access token must be used.")
        if token.startswith("expired-"):
            return _graph_answer(
                190, 463, None, "Error validating access token: Session has expired."
            )
        if token.startswith("invalid-"):
            return _graph_answer(190, 467, None, "Invalid OAuth access token.")
        parts = request.path.strip("/").split("/")
        obj = parts[1] if len(parts) > 1 else ""
        rule = self._take_rule(token, obj)
        if rule is not None:
            return _graph_answer(rule.code, rule.subcode, rule.status)
        fault = self.take_path_fault(request.method, request.path)
        if fault is not None:
            return self.answer_with_fault(fault, lambda: FakeServer.dispatch(self, request))
        return super().dispatch(request)

    def _take_rule(self, token: str, obj: str) -> GraphErrorRule | None:
        with self._state:
            for store, key in ((self.token_errors, token), (self.account_errors, obj)):
                rule = rule_take(store, key)
                if rule is not None:
                    return rule
            rule, self.global_error = global_rule_take(self.global_error)
            return rule

    def control(self, request: FakeRequest) -> FakeResponse:
        action = request.path.rstrip("/").rsplit("/", 1)[-1]
        if action == "graph-error" and request.method == "POST":
            try:
                payload = request.json() or {}
                self.fail(
                    code=int(payload["code"]),
                    token=payload.get("token"),
                    account=payload.get("account"),
                    subcode=payload.get("subcode"),
                    status=payload.get("status"),
                    remaining=payload.get("remaining"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                return FakeResponse(400, {"error": f"expected a JSON object with code: {exc}"})
            return FakeResponse(200, {"ok": True})
        if action == "graph-error" and request.method == "DELETE":
            self.clear_errors()
            return FakeResponse(200, {"cleared": True})
        if action == "posts" and request.method == "GET":
            with self._state:
                return FakeResponse(200, {"posts": [asdict(p) for p in self.posts[-200:]]})
        return super().control(request)

    # --- routes -----------------------------------------------------------------------------------

    def _feed_post(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        form = _form(request)
        message, link = form.get("message", ""), form.get("link", "")
        if not message and not link:
            return _graph_answer(100, None, None, "(#100) Missing message or attachment")
        with self._state:
            if any(
                p.account == match["obj"] and p.text == message and message for p in self.posts[-1:]
            ):
                return _graph_answer(506)
            post = SandboxPost(
                "facebook", match["obj"], f"{match['obj']}_{next(_ids)}", message, time.time(), link
            )
            self.posts.append(post)
        return FakeResponse(200, {"id": post.id})

    def _feed_list(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        query = parse_qs(request.query)
        since = float(query.get("since", ["0"])[0] or 0)
        posts = [
            {"id": p.id, "message": p.text, "created_time": p.graph_time()}
            for p in reversed(self.posts_for(match["obj"]))
            if p.network == "facebook" and p.created_time >= since
        ]
        return FakeResponse(200, {"data": posts[:100], "paging": {}})

    def _media_create(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        form = _form(request)
        image_url = form.get("image_url", "")
        if not image_url:
            return _graph_answer(100, 2207026, None, "(#100) The parameter image_url is required")
        container = Container(
            id=str(next(_ids)),
            ig_user=match["obj"],
            image_url=image_url,
            caption=form.get("caption", ""),
            polls_left=self.container_polls,
        )
        # An image URL naming the outcome lets a test reach ERROR or EXPIRED without set-up.
        if "sandbox-error" in image_url:
            container.status_code, container.polls_left = "ERROR", 0
        elif "sandbox-expired" in image_url:
            container.status_code, container.polls_left = "EXPIRED", 0
        with self._state:
            self.containers[container.id] = container
        return FakeResponse(200, {"id": container.id})

    def _object(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        obj = match["obj"]
        with self._state:
            container = self.containers.get(obj)
            if container is not None:
                if container.status_code == "IN_PROGRESS":
                    if container.polls_left <= 0:
                        container.status_code = "FINISHED"
                    container.polls_left -= 1
                body: dict[str, Any] = {"id": obj, "status_code": container.status_code}
                body["status"] = {"ERROR": "Error: media could not be fetched (2207052)"}.get(
                    container.status_code, container.status_code
                )
                return FakeResponse(200, body)
        return FakeResponse(
            200,
            {
                "id": obj,
                "name": f"Sandbox page {obj}",
                "username": f"sandbox_{obj}",
                "display_phone_number": "+1 555 0100",
                "verified_name": "Sandbox Business",
            },
        )

    def _media_publish(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        creation_id = _form(request).get("creation_id", "")
        with self._state:
            container = self.containers.get(creation_id)
            if container is None or container.ig_user != match["obj"]:
                return _graph_answer(100, 2207001, None, "(#100) Invalid creation_id")
            if container.status_code == "PUBLISHED":
                return _graph_answer(
                    100, None, None, "(#100) The media container was already published"
                )
            if container.status_code != "FINISHED":
                return _graph_answer(9007, 2207027, 400, "Media ID is not available")
            container.status_code = "PUBLISHED"
            post = SandboxPost(
                "instagram",
                match["obj"],
                str(next(_ids)),
                container.caption,
                time.time(),
                image_url=container.image_url,
            )
            self.posts.append(post)
        return FakeResponse(200, {"id": post.id})

    def _media_list(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        media = [
            {"id": p.id, "caption": p.text, "timestamp": p.graph_time()}
            for p in reversed(self.posts_for(match["obj"]))
            if p.network == "instagram"
        ]
        return FakeResponse(200, {"data": media[:50], "paging": {}})

    def _messages(self, request: FakeRequest, match: Match[str]) -> FakeResponse:
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
            return _graph_answer(100, None, None, "(#100) messaging_product must be whatsapp")
        to = str(payload.get("to") or "")
        template = payload.get("template") or {}
        if not to.isdigit() or payload.get("type") != "template" or not template.get("name"):
            return _graph_answer(131008, None, None, "(#131008) Required parameter is missing")
        message_id = f"wamid.SBX{next(_ids)}"
        with self._state:
            self.posts.append(
                SandboxPost(
                    "whatsapp", match["obj"], message_id, template["name"], time.time(), to=to
                )
            )
        return FakeResponse(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": message_id}],
            },
        )


def _token(request: FakeRequest) -> str:
    auth = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
    if auth.lower().startswith(("bearer ", "oauth ")):
        return auth.split(" ", 1)[1].strip()
    query = parse_qs(request.query)
    if "access_token" in query:
        return query["access_token"][0]
    return _form(request).get("access_token", "")


def _form(request: FakeRequest) -> dict[str, str]:
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    if "json" in content_type:
        try:
            body = request.json()
        except ValueError:
            return {}
        return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    parsed = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _graph_answer(
    code: int, subcode: int | None = None, status: int | None = None, message: str = ""
) -> FakeResponse:
    default_status = GRAPH_MESSAGES.get(code, ("", "", 400))[2]
    return FakeResponse(status or default_status, graph_error_body(code, subcode, message))
