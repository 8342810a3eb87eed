"""SMS segment counting (cost units): GSM-7 when every character fits, else UCS-2.

GSM 03.38: a single message holds 160 septets; a concatenated one loses 7 septets per part to the
user data header, leaving 153. Extension-table characters (``^{}\\[~]|€`` and form feed) take two
septets (escape + char) and an escape pair never straddles two parts. UCS-2 holds 70 UTF-16 code
units, 67 per part when concatenated, and a surrogate pair (emoji) never straddles two parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class SmsSegments:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def _pack(widths: list[int], *, single: int, part: int) -> int:
    total = sum(widths)
    if total <= single:
        return 1 if total else 0
    segments, used = 1, 0
    for width in widths:
        if used + width > part:
            segments += 1
            used = 0
        used += width
    return segments


def sms_segments_count(*, text: str) -> SmsSegments:
    """How many billable segments ``text`` costs, and in which encoding."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        widths = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsSegments("GSM-7", sum(widths), _pack(widths, single=GSM7_SINGLE, part=GSM7_PART))
    widths = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsSegments("UCS-2", sum(widths), _pack(widths, single=UCS2_SINGLE, part=UCS2_PART))
