"""The shared reader of untrusted input: limits before parsing, and text PostgreSQL can store."""

from __future__ import annotations

import time

import pytest

from continuity.inputs import (
    InputRejected,
    body_storable,
    json_parse,
    json_storable,
    text_storable,
    unix_seconds_parse,
)


def test_json_nested_fifty_thousand_deep_is_refused_quickly_without_recursing() -> None:
    for raw in (b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        started = time.monotonic()
        with pytest.raises(InputRejected, match="nested deeper than 32"):
            json_parse(raw=raw)
        # Generous: the refusal is a linear scan, never a parse; a busy machine stays far below.
        assert time.monotonic() - started < 5


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = b'{"text": "' + b"[{" * 1000 + b'\\"]"}'
    assert json_parse(raw=raw) == {"text": "[{" * 1000 + '"]'}


def test_nesting_up_to_the_limit_is_read() -> None:
    assert json_parse(raw=b"[" * 32 + b"]" * 32) is not None


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b'{"x": -Infinity}', b"1e400", b"-1e999"])
def test_non_finite_numbers_are_refused(raw: bytes) -> None:
    with pytest.raises(InputRejected):
        json_parse(raw=raw)


def test_an_int_with_more_digits_than_python_reads_is_refused_not_raised() -> None:
    with pytest.raises(InputRejected, match="not valid JSON"):
        json_parse(raw=b"1" * 5000)


def test_nul_and_lone_surrogates_are_refused_naming_the_field() -> None:
    with pytest.raises(InputRejected) as caught:
        json_parse(raw=b'{"subscription": {"endpoint": "https://x/\\u0000"}}')
    assert caught.value.field == "body.subscription.endpoint"
    with pytest.raises(InputRejected) as caught:
        json_parse(raw=b'[{"a": 1}, {"b": "\\ud800"}]')
    assert caught.value.field == "body[1].b"
    with pytest.raises(InputRejected, match="key"):
        json_parse(raw=b'{"a\\u0000": 1}')


def test_nul_and_lone_surrogates_are_replaced_when_asked() -> None:
    value = json_parse(raw=b'[{"a\\u0000": "x\\u0000y\\udfff"}]', nul="replace")
    assert value == [{"a\ufffd": "x\ufffdy\ufffd"}]


def test_size_and_encoding_limits() -> None:
    with pytest.raises(InputRejected, match="over the 10 byte limit"):
        json_parse(raw=b'"0123456789"', max_bytes=10)
    with pytest.raises(InputRejected, match="not UTF-8"):
        json_parse(raw=b'"\xff"')


def test_storable_text_has_no_nul_and_keeps_everything_else() -> None:
    assert text_storable("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert text_storable("plain é") == "plain é"
    assert json_storable({"k\x00": ["v\x00", 1, None]}) == {"k\ufffd": ["v\ufffd", 1, None]}
    assert body_storable(raw=b"ab\x00\xffcd", cap=4) == ("ab\ufffd\ufffd", True)


@pytest.mark.parametrize(
    "value", ["9" * 400, "-1", "1e9", "0x10", "", "\uff11\uff12\uff13", "12.5"]
)
def test_absurd_signing_timestamps_are_refused(value: str) -> None:
    with pytest.raises(InputRejected):
        unix_seconds_parse(value=value)


def test_a_real_signing_timestamp_is_read() -> None:
    assert unix_seconds_parse(value=" 1765000000 ") == 1765000000


def test_escapes_that_are_not_nul_or_lone_surrogates_pass() -> None:
    # A surrogate pair is one astral character; an escaped backslash before u0000 is text.
    assert json_parse(raw=b'["\\ud83d\\ude00", "\\\\u0000", "\\u00e9"]') == [
        "\U0001f600",
        "\\u0000",
        "\u00e9",
    ]
    with pytest.raises(InputRejected):
        json_parse(raw=b'["\\uD800"]')  # upper-case hex is the same lone surrogate
