"""The SMS segment counter against the GSM 03.38 tables written out here by position, and the
Italian accented letters: è é ù ì ò à (and É) are GSM-7; È Ì Ò Ù À á í ó ú are not (UCS-2)."""

from __future__ import annotations

import pytest

from delivery.sms_segments import GSM7_BASIC, GSM7_EXTENSION, sms_segments_count

# GSM 03.38 default alphabet, septets 0x00-0x7F in order; 0x1B is the escape to the extension
# table (not a character of its own).
ESC = "\x1b"
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ" + ESC + "ÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table's characters (each sent as escape + septet): form feed, ^ { } \ [ ~ ] | €.
EXTENSION_TABLE = "\f^{}\\[~]|€"


def test_the_tables_are_exactly_gsm_03_38() -> None:
    assert len(BASIC_TABLE) == 128
    assert set(BASIC_TABLE) - {ESC} == GSM7_BASIC
    assert set(EXTENSION_TABLE) == GSM7_EXTENSION


@pytest.mark.parametrize("letter", list("èéùìòàÉ"))
def test_italian_accents_in_the_table_keep_gsm7(letter: str) -> None:
    text = letter * 160
    assert (sms_segments_count(text=text).encoding, sms_segments_count(text=text).segments) == (
        "GSM-7",
        1,
    )
    assert sms_segments_count(text=letter * 161).segments == 2


@pytest.mark.parametrize("letter", list("ÈÌÒÙÀáíóúÁÍÓÚç"))
def test_accents_outside_the_table_switch_to_ucs2(letter: str) -> None:
    result = sms_segments_count(text="Perche " + letter)
    assert result.encoding == "UCS-2"


def test_an_italian_sms_is_one_gsm7_segment_until_a_capital_e_grave_makes_it_ucs2() -> None:
    text = "Ciao Anna: i saldi sono già qui, più sconti e novità. Perché aspettare? "
    assert sms_segments_count(text=text).encoding == "GSM-7"
    # 160 characters fit one GSM-7 segment, 161 need two of 153.
    long = (text * 3)[:160]
    assert sms_segments_count(text=long).segments == 1
    assert sms_segments_count(text=long + "x").segments == 2
    # "È" is not GSM-7: the same message becomes UCS-2, 70 a segment, 67 when concatenated.
    upper = "È" + long[1:]
    assert sms_segments_count(text=upper).encoding == "UCS-2"
    assert sms_segments_count(text=upper).segments == 3  # 160 / 67, rounded up
    assert sms_segments_count(text="È" + "a" * 69).segments == 1
    assert sms_segments_count(text="È" + "a" * 70).segments == 2
    assert sms_segments_count(text="È" + "a" * 133).segments == 2
    assert sms_segments_count(text="È" + "a" * 134).segments == 3
