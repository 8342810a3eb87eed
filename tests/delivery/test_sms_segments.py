from __future__ import annotations

import pytest

from delivery.sms_segments import sms_segments_count


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("Hello", "GSM-7", 5, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("Ça coûte 5€ à Zürich", "UCS-2", 20, 1),  # û is not GSM-7
        ("Ça côute 5€", "UCS-2", 11, 1),
        ("Prix: 5€ [promo]", "GSM-7", 19, 1),  # € [ ] take two septets each
        ("a" * 70, "GSM-7", 70, 1),
        ("é" * 10 + "ø", "GSM-7", 11, 1),  # accented letters in the basic table
        ("ä" * 70 + "\u0131", "UCS-2", 71, 2),  # dotless i forces UCS-2
        ("😀" * 35, "UCS-2", 70, 1),
        ("😀" * 36, "UCS-2", 72, 2),
    ],
)
def test_segments_are_counted_per_encoding(
    text: str, encoding: str, units: int, segments: int
) -> None:
    result = sms_segments_count(text=text)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


def test_an_extension_character_never_straddles_two_parts() -> None:
    # 152 plain septets then "€": 154 septets, and the escape pair cannot split at 153.
    text = "a" * 152 + "€" + "b" * 152
    result = sms_segments_count(text=text)
    assert result.units == 306
    # Plain packing would give ceil(306 / 153) = 2; the pair moves to part two, so 3.
    assert result.segments == 3


def test_extension_characters_count_double_at_the_single_message_limit() -> None:
    assert sms_segments_count(text="{" * 80).segments == 1
    assert sms_segments_count(text="{" * 80 + "a").segments == 2


def test_a_surrogate_pair_never_straddles_two_ucs2_parts() -> None:
    text = "\u0131" * 66 + "😀" + "\u0131" * 66
    result = sms_segments_count(text=text)
    assert result.units == 134
    assert result.segments == 3
