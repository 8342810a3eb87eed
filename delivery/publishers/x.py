"""X (Twitter) API v2: POST /2/tweets with a user-context bearer token.

X answers errors as RFC 7807 problems ({"title", "detail", "type", "status"}, sometimes with an
"errors" list); the HTTP status carries the meaning. Rate limits come with x-rate-limit-reset
(epoch seconds) on 429.
"""

from __future__ import annotations

import re
import time
import unicodedata
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings

from delivery.publishers.base import (
    ConnectionStatus,
    HttpCall,
    HttpPublisher,
    PublishError,
    PublishPermanent,
    PublishResult,
    PublishThrottled,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
    X,
    retry_after_seconds,
    text_normalized,
    text_with_link,
)

# twitter-text v3 configuration (config/v3.json): weights are in 1/100 of a character.
X_TEXT_LIMIT = 280
X_URL_LENGTH = 23
_SCALE = 100
_DEFAULT_WEIGHT = 200
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

_EMOJI_BASE = "\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"
_EMOJI_MOD = "\ufe0f\U0001f3fb-\U0001f3ff"
# One emoji as a reader sees it (flags, keycaps, skin tones, ZWJ families) weighs 2 in v3.
_EMOJI = re.compile(
    "[\U0001f1e6-\U0001f1ff]{2}"
    "|[0-9#*]\ufe0f?\u20e3"
    f"|[{_EMOJI_BASE}][{_EMOJI_MOD}]*(?:\u200d[{_EMOJI_BASE}][{_EMOJI_MOD}]*)*"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# URLs X wraps in t.co: with a scheme, or a bare host whose TLD X's autolinker knows. The
# country list is twitter-text's (conformance/tld_lib.yml, ASCII part); the generic list is the
# common subset. As in twitter-text, a bare ccTLD host with a one- or two-letter name and no
# path ("ab.de") is not a link.
_CCTLDS = _words(
    """ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn
    bo bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk
    dm do dz ec ee eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr
    gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn
    kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr
    ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr
    ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy
    sz tc td tf tg th tj tk tl tm tn to tp tr tt tv tw tz ua ug uk um us uy uz va vc ve vg vi vn
    vu wf ws ye yt za zm zw"""
)
_GTLDS = _words(
    """com org net edu gov mil int info biz name pro aero coop museum mobi asia tel travel jobs
    app dev page blog shop store online site website tech io ai xyz club live news media email
    cloud digital agency design studio space world today life link click top icu fun vip art
    services solutions company group global center network systems academy events social
    market marketing sale deals coupons"""
)
_SCHEME_URL = re.compile(r"(?i)(?<![\w@.])https?://[^\s<>\"]+")
_BARE_HOST = re.compile(
    r"(?i)(?<![\w@./])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+)([a-z]{2,})\b((?:[/?#][^\s<>\"]*)?)"
)
_TRAILING = ".,;:!?'\")]"


def x_weighted_length(text: str) -> int:
    """Length as X counts it: NFC code points weighted by range, any URL 23, an emoji 2."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for start, end in x_url_spans(text):
        total += _weighted_chars(text[position:start])
        total += X_URL_LENGTH * _SCALE
        position = end
    total += _weighted_chars(text[position:])
    return -(-total // _SCALE)  # ceil: X rounds a half character up


def x_url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every part of ``text`` X would turn into a t.co link."""
    spans: list[tuple[int, int]] = []
    for match in _SCHEME_URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        if url:
            spans.append((match.start(), match.start() + len(url)))
    for match in _BARE_HOST.finditer(text):
        if any(start <= match.start() < end for start, end in spans):
            continue
        labels, tld, path = match.group(1), match.group(2).lower(), match.group(3)
        name = labels.rstrip(".").rsplit(".", 1)[-1]
        if tld in _GTLDS or (tld in _CCTLDS and (len(name) > 2 or path)):
            url = match.group(0).rstrip(_TRAILING)
            spans.append((match.start(), match.start() + len(url)))
    return sorted(spans)


def _x_links_replaced(text: str) -> str:
    for start, end in reversed(x_url_spans(text)):
        text = f"{text[:start]}https://t.co/x{text[end:]}"
    return text


def _weighted_chars(segment: str) -> int:
    total = 0
    position = 0
    for match in _EMOJI.finditer(segment):
        total += sum(_char_weight(c) for c in segment[position : match.start()])
        total += _DEFAULT_WEIGHT
        position = match.end()
    return total + sum(_char_weight(c) for c in segment[position:])


def _char_weight(char: str) -> int:
    point = ord(char)
    for start, end in _LIGHT_RANGES:
        if start <= point <= end:
            return _SCALE
    return _DEFAULT_WEIGHT


class XPublisher(HttpPublisher):
    network = X

    def base_url(self, account: SocialAccountRef) -> str:
        return (account.base_url or settings.SOCIAL_X_BASE_URL).rstrip("/")

    @staticmethod
    def tweet_text(post: SocialPostRequest) -> str:
        return text_with_link(post.text, post.link)

    def content_problems(self, *, post: SocialPostRequest) -> list[str]:
        text = self.tweet_text(post)
        if not text.strip():
            return ["X needs text."]
        length = x_weighted_length(text)
        if length > X_TEXT_LIMIT:
            return [
                f"X text counts {length} characters (links count {X_URL_LENGTH} each); "
                f"the limit is {X_TEXT_LIMIT}: shorten it or add an X-specific text."
            ]
        return []

    def publish(self, *, account: SocialAccountRef, post: SocialPostRequest) -> PublishResult:
        body = self.call(
            account,
            HttpCall(
                "POST",
                f"{self.base_url(account)}/2/tweets",
                sends=True,
                json={"text": self.tweet_text(post)},
            ),
        )
        data = body["data"] if isinstance(body.get("data"), dict) else {}
        tweet_id = str(data.get("id") or "")
        if not tweet_id:
            raise PublishUnknown("post creation answered without data.id", network=self.network)
        return PublishResult(network=self.network, external_id=tweet_id)

    def find_recent(
        self, *, account: SocialAccountRef, post: SocialPostRequest, since: datetime
    ) -> str | None:
        body = self.call(
            account,
            HttpCall(
                "GET",
                f"{self.base_url(account)}/2/users/{account.x_user_id}/tweets",
                sends=False,
                params={
                    "start_time": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "max_results": 100,
                    "tweet.fields": "created_at",
                },
            ),
        )
        wanted = text_normalized(_x_links_replaced(self.tweet_text(post)))
        matches = []
        for item in body.get("data") or []:
            created = _x_time(str(item.get("created_at", "")))
            if created is None or created < since.replace(microsecond=0):
                continue
            if text_normalized(_x_links_replaced(str(item.get("text", "")))) == wanted:
                matches.append((created, str(item.get("id"))))
        return min(matches)[1] if matches else None

    def check_connection(self, *, account: SocialAccountRef) -> ConnectionStatus:
        try:
            body = self.call(
                account, HttpCall("GET", f"{self.base_url(account)}/2/users/me", sends=False)
            )
        except PublishError as exc:
            return ConnectionStatus(ok=False, detail=str(exc), error=exc)
        data = body["data"] if isinstance(body.get("data"), dict) else {}
        user_id = str(data.get("id") or "")
        username = str(data.get("username") or "")
        if account.x_user_id and user_id != account.x_user_id:
            return ConnectionStatus(
                ok=False,
                detail=f"the token belongs to user {user_id}, not {account.x_user_id}",
                display_name=username,
            )
        return ConnectionStatus(ok=True, detail=f"X @{username or user_id}", display_name=username)

    def error_from_response(self, response: requests.Response, *, sends: bool) -> PublishError:
        status = response.status_code
        detail = _problem_detail(response)
        common: dict[str, Any] = {"network": self.network, "http_status": status}
        if status == 429:
            return PublishThrottled(
                f"rate limited: {detail}", retry_after_s=_x_retry_after(response.headers), **common
            )
        if status >= 500:
            if sends and status == 504:
                return PublishUnknown(f"gateway timeout: {detail}", **common)
            return PublishTransient(f"server error: {detail}", **common)
        if status == 401:
            return PublishPermanent(
                f"reconnect the account: the token was rejected ({detail})",
                needs_reauth=True,
                **common,
            )
        if status == 403 and "duplicate" in detail.lower():
            return PublishPermanent(f"duplicate post refused: {detail}", **common)
        return PublishPermanent(f"request refused: {detail}", **common)


def _problem_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    parts = [str(body.get(key)) for key in ("title", "detail") if body.get(key)]
    for error in body.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
    return ": ".join(parts)[:500] or f"HTTP {response.status_code}"


def _x_retry_after(headers: Any) -> float:
    default = float(settings.SOCIAL_THROTTLE_DEFAULT_RETRY_S)
    reset = headers.get("x-rate-limit-reset", "")
    try:
        return max(1.0, float(reset) - time.time())
    except ValueError:
        return retry_after_seconds(headers, default=default)


def _x_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
