"""Hostile input for the fuzz tests of the unauthenticated endpoints (Hypothesis strategies).

Bounded and derandomised so the suite stays fast and a failure replays the same way; the
interesting values (NUL, lone surrogates, non-finite and huge numbers, deep nesting, wrong JSON
types, over-long strings) are drawn often on purpose instead of waiting for chance to find them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db.models import Model
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,  # a shared 2-core machine makes per-example timing meaningless
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE_TEXT = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        "x" * 5000,
        "9" * 400,
        "²",
        "١٢٣",
        "-1e20",
        "NaN",
        "<script>alert(1)</script>",
        "'; DROP TABLE contacts_contact; --",
        "\u202e",
        "",
    ]
)
HOSTILE_NUMBERS = st.sampled_from(
    [1e300, -1e20, float("nan"), float("inf"), float("-inf"), 10**40, -1, 0, 2**63, 1.5]
)
DEEP = st.sampled_from(
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"[" * 50_000,
        b'{"x": ' + b"[" * 40 + b"]" * 40 + b"}",
    ]
)
RAW_HOSTILE = st.sampled_from(
    [b"", b"\x00", b"null", b"1e400", b"NaN", b'"x"', b"[]", b"{}", b"\xff\xfe", b"[1, 2"]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    HOSTILE_TEXT,
    HOSTILE_NUMBERS,
)
keys = st.one_of(st.text(max_size=12), HOSTILE_TEXT)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)


def dumps(value: Any) -> bytes:
    # allow_nan: NaN and Infinity go out as the bare words a hostile sender would write.
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def objects_like(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects shaped like the real payload, each field either plausible or hostile."""
    return st.fixed_dictionaries(
        {},
        optional={name: st.one_of(strategy, json_values) for name, strategy in fields.items()},
    )


def bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Request bodies: mostly the endpoint's own shape gone wrong, plus raw and deep hostility."""
    return st.one_of(
        shaped.map(dumps),
        shaped.map(dumps),
        json_values.map(dumps),
        DEEP,
        RAW_HOSTILE,
        st.binary(max_size=200),
    )


def counts(*models: type[Model]) -> Callable[[], dict[str, int]]:
    """A snapshot function of the row counts of ``models``: equal before and after a refusal."""

    def snapshot() -> dict[str, int]:
        return {model._meta.label: model._default_manager.count() for model in models}

    return snapshot
