"""Cells that a spreadsheet will not run: CSV/XLSX exports hold names and texts that contacts and
marketers wrote, and Excel or LibreOffice treat a cell starting with = + - @ (or a tab or carriage
return before one) as a formula, e.g. ``=HYPERLINK("http://x", "click")``. Such a cell gets a
leading apostrophe, as OWASP's CSV-injection advice says; imports strip it again."""

from __future__ import annotations

from typing import Any, TypeVar

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_T = TypeVar("_T")


def spreadsheet_cell_neutralise(*, value: _T) -> _T | str:
    """``value`` with an apostrophe in front when it is text a spreadsheet would read as a
    formula; numbers and everything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_cell_restore(*, value: Any) -> Any:
    """The inverse for imports, so an exported file imports back unchanged (a phone number
    "+336..." is exported as "'+336...")."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def spreadsheet_row_neutralise(*, row: list[Any]) -> list[Any]:
    return [spreadsheet_cell_neutralise(value=cell) for cell in row]
