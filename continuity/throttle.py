"""Rate limits on the endpoints anyone can call: provider and monitor webhooks, the public pages
reached by signed links, push subscribe and the admin's sign-in form.

One middleware, configured by THROTTLE_RULES (continuity/settings.py; limits and reasons in
docs/configuration.md, "Rate limits"): the first rule whose path pattern and method match the
request decides. Each rule counts requests per client address (IPv6 per /64, which one
subscriber usually holds whole) and, when its pattern names a source (a monitor's slug, a
workspace's webhook URL), per source too, in fixed windows in Redis. Over either limit the
request is answered 429 with Retry-After and the reason, before any view runs; the address is
counted first, and a request it refuses never uses up the source's allowance, so one noisy
client cannot shut a provider's other addresses out. Rules may also cap the refused answers (4xx
other than 429) an address collects: forged webhooks and guessed links are what such answers
mostly are, and each of them costs a stored receipt or a token check.

If Redis cannot be reached the rule's ``fail_open`` decides. Webhooks always pass (a provider
may not retry, and a lost bounce or STOP costs more than an unthrottled minute); so do the
public pages by default (an unsubscribe must work whatever our cache does). A failure is
logged, and Redis is left alone for THROTTLE_REDIS_RETRY_S so an outage costs each process one
connection attempt per period, not one per request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from continuity.client_ip import client_ip

logger = logging.getLogger(__name__)

# KEYS: counters, in order. ARGV[1]: window (s); then per key its limit and whether to take one
# from it (1) or only look (0). Returns 0 when every counter had room, else the 1-based index of
# the first that had none; the counters after it are left alone.
_TAKE_LUA = """
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local n
  if ARGV[2 * i + 1] == '1' then
    n = redis.call('INCR', key)
    if n == 1 then redis.call('EXPIRE', key, window + 1) end
  else
    n = tonumber(redis.call('GET', key) or '0') + 1
  end
  if n > limit then return i end
end
return 0
"""

# A source named in a URL is whatever the caller typed: long ones become a digest in the key.
_SOURCE_KEY_MAX = 64


@dataclass(frozen=True)
class Rule:
    """One throttled group of endpoints (an entry of THROTTLE_RULES)."""

    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    per_ip: int
    per_source: int
    # Refused answers (4xx but 429) per address: past it, the address is refused outright, so
    # forged or misdirected requests cannot keep adding receipts and work at the full rate.
    refused_per_ip: int
    window_s: int
    fail_open: bool
    reply: str  # "json" or "html"


@dataclass(frozen=True)
class Refusal:
    rule: Rule
    scope: str  # "ip", "source", "refused" or "unavailable"
    retry_after_s: int


def _rule_parse(entry: Mapping[str, Any]) -> Rule:
    methods = entry.get("methods")
    return Rule(
        name=str(entry["name"]),
        pattern=re.compile(str(entry["pattern"])),
        methods=frozenset(m.upper() for m in methods) if methods else None,
        per_ip=int(entry.get("per_ip", 0)),
        per_source=int(entry.get("per_source", 0)),
        refused_per_ip=int(entry.get("refused_per_ip", 0)),
        window_s=max(1, int(entry.get("window_s", 60))),
        fail_open=bool(entry.get("fail_open", True)),
        reply=str(entry.get("reply", "json")),
    )


class _CompiledRules:
    # The settings list the rules were compiled from is held, not just its id: a list built
    # later (tests override the setting) can never be mistaken for it.
    source: object = None
    rules: tuple[Rule, ...] = ()


def throttle_rules() -> tuple[Rule, ...]:
    """THROTTLE_RULES, compiled once per settings value (tests override it)."""
    configured = settings.THROTTLE_RULES
    if _CompiledRules.source is not configured:
        _CompiledRules.rules = tuple(_rule_parse(entry) for entry in configured)
        _CompiledRules.source = configured
    return _CompiledRules.rules


def _rule_match(path: str, method: str) -> tuple[Rule, str | None] | None:
    for rule in throttle_rules():
        if rule.methods is not None and method not in rule.methods:
            continue
        match = rule.pattern.match(path)
        if match is None:
            continue
        groups = match.groupdict()
        source = ":".join(str(value or "-") for value in groups.values()) if groups else None
        return rule, source
    return None


def _ip_key(ip: str | None) -> str:
    if ip is None:
        return "unknown"
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _source_key(source: str) -> str:
    if len(source) <= _SOURCE_KEY_MAX and source.isprintable():
        return source
    return "h:" + hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


class _Counter:
    """The Redis side: one client per process, left alone for a while after a failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._client_url = ""
        self._script: Any = None
        self._down_until = 0.0

    def _connect(self) -> Any:
        url = settings.THROTTLE_REDIS_URL
        with self._lock:
            if self._client is None or self._client_url != url:
                timeout = settings.THROTTLE_REDIS_TIMEOUT_S
                self._client = redis.Redis.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout
                )
                self._client_url = url
                self._script = self._client.register_script(_TAKE_LUA)
                self._down_until = 0.0
            return self._script

    def take(
        self, *, keys: list[str], limits: list[int], taking: list[bool], window_s: int
    ) -> int | None:
        """Index (1-based) of the first counter over its limit, 0 if none; None: Redis is down."""
        if time.monotonic() < self._down_until and self._client_url == settings.THROTTLE_REDIS_URL:
            return None
        script = self._connect()
        args: list[int] = [window_s]
        for limit, take in zip(limits, taking, strict=True):
            args += [limit, 1 if take else 0]
        try:
            return int(script(keys=keys, args=args))
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + settings.THROTTLE_REDIS_RETRY_S
            logger.warning(
                "rate limits unavailable (Redis: %s); requests pass unthrottled for %ss",
                exc,
                settings.THROTTLE_REDIS_RETRY_S,
            )
            return None

    def reset(self) -> None:
        """Forget the client and any remembered outage (tests, settings changes)."""
        with self._lock:
            self._client = None
            self._client_url = ""
            self._down_until = 0.0


counter = _Counter()


@dataclass(frozen=True)
class _Counted:
    rule: Rule
    refused_key: str | None


def _counted(*, path: str, method: str, ip: str | None) -> tuple[_Counted, Refusal | None] | None:
    found = _rule_match(path, method)
    if found is None:
        return None
    rule, source = found
    now = time.time()
    window = int(now // rule.window_s)
    base = f"{settings.REDIS_KEY_PREFIX}continuity:throttle:{rule.name}"
    address = _ip_key(ip)
    refused_key = f"{base}:refused:{address}:{window}" if rule.refused_per_ip else None
    scopes: list[str] = []
    keys: list[str] = []
    limits: list[int] = []
    taking: list[bool] = []
    if refused_key is not None:
        scopes.append("refused")
        keys.append(refused_key)
        limits.append(rule.refused_per_ip)
        taking.append(False)
    if rule.per_ip:
        scopes.append("ip")
        keys.append(f"{base}:ip:{address}:{window}")
        limits.append(rule.per_ip)
        taking.append(True)
    if rule.per_source and source is not None:
        scopes.append("source")
        keys.append(f"{base}:src:{_source_key(source)}:{window}")
        limits.append(rule.per_source)
        taking.append(True)
    counted = _Counted(rule=rule, refused_key=refused_key)
    if not keys:
        return counted, None
    over = counter.take(keys=keys, limits=limits, taking=taking, window_s=rule.window_s)
    if over is None:
        if rule.fail_open:
            return counted, None
        # Closed: refuse for a short while rather than let an unbounded stream through.
        return counted, Refusal(rule=rule, scope="unavailable", retry_after_s=rule.window_s)
    if over == 0:
        return counted, None
    retry_after = max(1, math.ceil((window + 1) * rule.window_s - now))
    return counted, Refusal(rule=rule, scope=scopes[over - 1], retry_after_s=retry_after)


def throttle_check(*, path: str, method: str, ip: str | None) -> Refusal | None:
    """Count one request; the refusal to answer with, or None to let it through."""
    result = _counted(path=path, method=method, ip=ip)
    return None if result is None else result[1]


def _refused_count(counted: _Counted) -> None:
    if counted.refused_key is None:
        return
    counter.take(
        keys=[counted.refused_key],
        limits=[2**31],
        taking=[True],
        window_s=counted.rule.window_s,
    )


def _reason(refusal: Refusal) -> str:
    if refusal.scope == "ip":
        return _("Too many requests from your address. Try again in %(seconds)s seconds.") % {
            "seconds": refusal.retry_after_s
        }
    if refusal.scope == "refused":
        return _(
            "Too many refused requests from your address. Try again in %(seconds)s seconds."
        ) % {"seconds": refusal.retry_after_s}
    if refusal.scope == "source":
        return _("Too many requests for this endpoint. Try again in %(seconds)s seconds.") % {
            "seconds": refusal.retry_after_s
        }
    return _("Requests cannot be counted right now. Try again in %(seconds)s seconds.") % {
        "seconds": refusal.retry_after_s
    }


def throttled_response(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    """The 429 answer: the project's JSON error shape, or a page for people's browsers."""
    reason = _reason(refusal)
    response: HttpResponse
    if refusal.rule.reply == "html":
        response = render(request, "continuity/throttled.html", {"reason": reason}, status=429)
    else:
        response = JsonResponse({"error": "rate_limited", "detail": reason}, status=429)
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


class ThrottleMiddleware:
    """Answers 429 to requests over a THROTTLE_RULES limit before any view runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.THROTTLE_ENABLED:
            return self.get_response(request)
        ip = client_ip(request)
        result = _counted(path=request.path_info, method=request.method or "", ip=ip)
        if result is None:
            return self.get_response(request)
        counted, refusal = result
        if refusal is not None:
            logger.info(
                "throttled %s %s (%s per %ss)",
                request.method,
                refusal.rule.name,
                refusal.scope,
                refusal.rule.window_s,
                extra={"ip": ip},
            )
            return throttled_response(request, refusal)
        response = self.get_response(request)
        if 400 <= response.status_code < 500 and response.status_code != 429:
            _refused_count(counted)
        return response
