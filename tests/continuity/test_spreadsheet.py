from __future__ import annotations

import pytest

from continuity.spreadsheet import spreadsheet_cell_neutralise, spreadsheet_cell_restore


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"],
)
def test_text_a_spreadsheet_would_run_gets_an_apostrophe_and_imports_back(value: str) -> None:
    neutral = spreadsheet_cell_neutralise(value=value)
    assert neutral == "'" + value
    assert spreadsheet_cell_restore(value=neutral) == value


@pytest.mark.parametrize("value", ["Ann", "", "'quoted", "a=b", -5, 3.5, None])
def test_everything_else_is_left_as_it_is(value: object) -> None:
    assert spreadsheet_cell_neutralise(value=value) == value
    assert spreadsheet_cell_restore(value=value) == value
