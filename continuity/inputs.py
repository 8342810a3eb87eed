"""Reading untrusted input safely: one JSON reader with limits, and text PostgreSQL can store.

Every endpoint reachable without a login (provider and monitor webhooks, push subscribe) reads
its JSON body through ``json_parse`` and stores what it received through ``text_storable`` /
``json_storable``, so no request can answer 5xx because of what its bytes contain:

- nesting is bounded before the parser runs (the C parser recurses: 50,000 ``[`` is a
  RecursionError, and anything nested close to the recursion limit breaks later code that walks
  the value, including ``json.dumps`` on the way into a jsonb column);
- ``NaN``, ``Infinity`` and numbers that overflow a float (``1e400``) are refused: they are not
  JSON (RFC 8259) and turn into OverflowError or nonsense the first time they are used;
- PostgreSQL ``text`` and ``jsonb`` cannot hold NUL (``\\x00``, or ``\\u0000`` in JSON) and
  psycopg cannot encode a lone surrogate (``\\ud800``): either one is refused with the path of
  the string that holds it, or replaced by U+FFFD where the caller must keep what it was sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

# Deep enough for every payload a provider or monitor sends (Alertmanager's is 4 levels, SendGrid
# events 3), shallow enough that no code walking the value recursively gets near the limit.
JSON_MAX_DEPTH = 32

# A JSON string, so brackets inside strings do not count as nesting. Possessive quantifiers keep
# the scan linear on hostile input (an unterminated string cannot make it backtrack).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
# What text and jsonb columns cannot hold (NUL) and what psycopg cannot encode (lone surrogates).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")

# Unix seconds between 1970 and the year 9999: anything outside is no real signing time, and an
# int that large would overflow the float arithmetic a freshness check does.
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")

NulPolicy = Literal["reject", "replace"]


class InputRejected(ValueError):
    """Malformed untrusted input. ``detail`` says why; ``field`` is the JSON path, when known."""

    def __init__(self, detail: str, *, field: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


def _depth_check(raw: bytes, *, max_depth: int) -> None:
    depth = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise InputRejected(f"JSON nested deeper than {max_depth} levels")
        else:
            depth -= 1


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputRejected(f"number {text[:40]} is out of range")
    return value


def _not_json_constant(name: str) -> Any:
    raise InputRejected(f"{name} is not a JSON number")


def json_parse(
    *,
    raw: bytes | str,
    max_bytes: int | None = None,
    max_depth: int = JSON_MAX_DEPTH,
    nul: NulPolicy = "reject",
    where: str = "body",
) -> Any:
    """Parse untrusted JSON within limits, or raise InputRejected saying what is wrong.

    ``nul="reject"`` refuses a string holding NUL or a lone surrogate (naming its path);
    ``"replace"`` swaps them for U+FFFD, for payloads that are kept even when imperfect."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if max_bytes is not None and len(data) > max_bytes:
        raise InputRejected(f"{where} is over the {max_bytes} byte limit")
    _depth_check(data, max_depth=max_depth)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRejected(f"{where} is not UTF-8") from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_not_json_constant)
    except InputRejected:
        raise
    except RecursionError:  # pragma: no cover - the depth check runs first
        raise InputRejected(f"{where} is nested too deeply") from None
    except ValueError as exc:
        # Also Python's cap on the digits of an int (4300), which json raises as ValueError.
        raise InputRejected(f"{where} is not valid JSON: {str(exc)[:200]}") from None
    # Valid JSON carries NUL and surrogates only as \u escapes: without one, the walk is skipped.
    if not _UNSTORABLE_ESCAPE.search(data):
        return value
    if nul == "replace":
        return json_storable(value)
    _storable_check(value, path=where)
    return value


def _storable_check(value: Any, *, path: str) -> None:
    # Iterative: the depth is bounded already, but a wide value should not cost stack either.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise InputRejected(
                    f"{where} holds a NUL byte or an unpaired surrogate", field=where
                )
        elif isinstance(item, dict):
            for key, inner in item.items():
                if _UNSTORABLE.search(key):
                    raise InputRejected(
                        f"{where} has a key holding a NUL byte or an unpaired surrogate",
                        field=where,
                    )
                stack.append((inner, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((inner, f"{where}[{i}]") for i, inner in enumerate(item))


def text_storable(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD: safe for text and jsonb."""
    return _UNSTORABLE.sub(REPLACEMENT, value) if _UNSTORABLE.search(value) else value


def body_storable(*, raw: bytes, cap: int) -> tuple[str, bool]:
    """A received body as storable text: at most ``cap`` bytes, invalid UTF-8 and NUL replaced
    by U+FFFD. Returns the text and whether it was cut."""
    return text_storable(raw[:cap].decode("utf-8", errors="replace")), len(raw) > cap


def json_storable(value: Any) -> Any:
    """A JSON value with every string (and key) passed through ``text_storable``."""
    if isinstance(value, str):
        return text_storable(value)
    if isinstance(value, Mapping):
        return {text_storable(str(k)): json_storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_storable(v) for v in value]
    return value


def unix_seconds_parse(*, value: str, what: str = "timestamp") -> int:
    """A signing timestamp header: plain decimal unix seconds, or InputRejected."""
    text = value.strip()
    if not _UNIX_SECONDS.fullmatch(text):
        raise InputRejected(f"{what} {text[:40]!r} is not a unix time in seconds")
    return int(text)
