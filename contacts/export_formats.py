"""The admin's CSV and XLSX formats, with formula cells neutralised on export.

django-import-export's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT only drops a leading "=" (and
leaves +, -, @, tab and CR alone), so the formats apply continuity.spreadsheet to every cell."""

from __future__ import annotations

from typing import Any

from import_export.formats import base_formats

from continuity.spreadsheet import spreadsheet_row_neutralise


def _neutralised(dataset: Any) -> Any:
    safe = dataset.__class__(headers=dataset.headers, title=dataset.title)
    for row in dataset:
        safe.append(spreadsheet_row_neutralise(row=list(row)))
    return safe


class SafeCSV(base_formats.CSV):
    def export_data(self, dataset: Any, **kwargs: Any) -> Any:
        return super().export_data(_neutralised(dataset), **kwargs)


class SafeXLSX(base_formats.XLSX):
    def export_data(self, dataset: Any, **kwargs: Any) -> Any:
        return super().export_data(_neutralised(dataset), **kwargs)
