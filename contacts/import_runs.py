"""An import's record and its error report, kept by the install and nowhere else.

Both ways in (``manage.py import_contacts`` and the admin import) record an ImportRun with its
totals and every refused row with its original values. The report is read back from here (the
admin's Imports page, ``manage.py import_report``), so there is one copy of it: erasure strips a
person's lines from it (``import_rows_erase``), retention expires whole runs with their rows
(contacts/retention.py). An operator who saves a report to a file owns that copy, like any
export.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from contacts.models import Contact, ImportRefusedRow, ImportRun, ImportUpload, ImportVia
from contacts.normalize import FieldError, phone_normalise
from contacts.privacy import ERASED_MARK, ErasureSubject, erased_identifiers_find, erasure_subject
from continuity.models import Workspace
from continuity.spreadsheet import spreadsheet_row_neutralise

# Refused rows are written in pages of this many: a file refused whole writes in bounded memory.
_REFUSED_PAGE = 2000
REPORT_HEADER = ("row", "field", "message")


def import_run_start(
    *, workspace: Workspace, via: ImportVia, file_name: str, columns: Sequence[str], actor: str
) -> ImportRun:
    return ImportRun.objects.create(
        workspace=workspace,
        via=via,
        file_name=file_name[:200],
        columns=[c[:200] for c in columns],
        actor_label=actor[:150],
    )


def import_rows_refuse(
    *, run: ImportRun, refused: Iterable[tuple[int, str, str, Sequence[Any]]]
) -> int:
    """Record refused rows: (row number, field, reason, the row's original values). A row that
    names a person erased from the workspace (refused for that, or for anything else) is kept
    without its values, and its reason without them: after an erasure, no new copy."""
    rows = [
        ImportRefusedRow(
            workspace_id=run.workspace_id,
            run=run,
            row=number,
            field=str(field)[:200],
            message=str(message),
            values=["" if v is None else str(v) for v in values],
        )
        for number, field, message, values in refused
    ]
    _erased_withhold(workspace_id=run.workspace_id, rows=rows)
    ImportRefusedRow.objects.bulk_create(rows, batch_size=_REFUSED_PAGE)
    return len(rows)


def _erased_withhold(*, workspace_id: int, rows: list[ImportRefusedRow]) -> None:
    identifiers: list[list[tuple[str, str]]] = []  # per row: (cell as written, normalised)
    for refused in rows:
        found: list[tuple[str, str]] = []
        for cell in refused.values:
            text = cell.strip()
            if "@" in text:
                found.append((text, text.lower()))
            elif sum(c.isdigit() for c in text) >= 7:
                try:
                    phone = phone_normalise(text)
                except FieldError:
                    phone = None
                if phone:
                    found.append((text, phone))
        identifiers.append(found)
    erased = erased_identifiers_find(
        workspace_id=workspace_id,
        emails=[n for found in identifiers for _, n in found if "@" in n],
        phones=[n for found in identifiers for _, n in found if "@" not in n],
    )
    if not erased:
        return
    for refused, found in zip(rows, identifiers, strict=True):
        if not any(normalised in erased for _, normalised in found):
            continue
        refused.values = [ERASED_MARK if v.strip() else "" for v in refused.values]
        for written, normalised in found:
            for form in {written, normalised}:
                refused.message = re.sub(re.escape(form), ERASED_MARK, refused.message, flags=re.I)


def import_run_finish(*, run: ImportRun, totals: dict[str, int], finished: bool = True) -> None:
    """Store the totals; ``finished=False`` for a run that was interrupted (it stays open)."""
    for name in ("rows", "created", "updated", "unchanged"):
        setattr(run, name, totals.get(name, 0))
    run.refused = totals.get("errors", 0)
    run.finished_at = timezone.now() if finished else None
    run.save(update_fields=["rows", "created", "updated", "unchanged", "refused", "finished_at"])


def import_report_lines(run: ImportRun) -> Iterator[list[str]]:
    """The error report as CSV records: the header, then each refused row in file order, its
    values under the file's own columns. Every cell is escaped against formula injection: the
    values are what a stranger typed into a file, and the report is opened in a spreadsheet."""
    yield spreadsheet_row_neutralise(row=[*REPORT_HEADER, *run.columns])
    last = (-1, -1)
    while True:
        page = _refused_after(run, last)
        if not page:
            return
        for refused in page:
            yield spreadsheet_row_neutralise(
                row=[str(refused.row), refused.field, refused.message, *refused.values]
            )
        last = (page[-1].row, page[-1].pk)


def _refused_after(run: ImportRun, last: tuple[int, int]) -> list[ImportRefusedRow]:
    row, pk = last
    return list(
        ImportRefusedRow.objects.filter(run=run)
        .filter(Q(row__gt=row) | Q(row=row, pk__gt=pk))
        .order_by("row", "pk")[:_REFUSED_PAGE]
    )


def import_report_write(run: ImportRun, handle: Any) -> int:
    """Write the report as CSV to a text handle; returns the refused rows written."""
    writer = csv.writer(handle)
    written = -1
    for record in import_report_lines(run):
        writer.writerow(record)
        written += 1
    return written


# --- erasure -----------------------------------------------------------------------------------

# A refused row is about the person when any of its cells holds their email or phone in any
# written form (the subject's pattern), or a phone written with spaces, dots, brackets or a
# national prefix whose digits end the person's number; or when its external_id cell is theirs.
# The plain LIKE and strpos tests only rule rows out cheaply before the regular expressions: a
# workspace's reports are scanned whole (0.9 s for 100,000 refused rows, docs/privacy.md).
_ROWS_ABOUT = """
SELECT r.id, r.run_id FROM contacts_importrefusedrow r
JOIN contacts_importrun run ON run.id = r.run_id
CROSS JOIN LATERAL (SELECT array_to_string(r."values", chr(31)) AS line) AS t
WHERE r.workspace_id = %(workspace)s AND (
    ((lower(t.line) LIKE ANY(%(likes)s) OR (%(digits)s <> '' AND strpos(t.line, %(digits)s) > 0))
     AND t.line ~* %(pattern)s)
    OR (length(%(digits)s) >= 7 AND EXISTS (
        SELECT 1 FROM unnest(r."values") AS cell,
             LATERAL (SELECT regexp_replace(cell, '[^0-9]', '', 'g') AS d) AS n
        WHERE strpos(translate(cell, ' .-()/_' || chr(160), ''), right(%(digits)s, 7)) > 0
          AND length(n.d) >= 7 AND right(%(digits)s, length(n.d)) = n.d
    ))
    OR (%(external_id)s <> '' AND r."values"[array_position(run.columns, 'external_id')]
        = %(external_id)s)
)
"""


def _rows_about(subject: ErasureSubject) -> list[tuple[int, int]]:
    """(refused row id, run id) of the workspace's refused rows about the subject."""
    digits = subject.phone.lstrip("+") if subject.phone else ""
    with connection.cursor() as cursor:
        cursor.execute(
            _ROWS_ABOUT,
            {
                "workspace": subject.workspace_id,
                "pattern": subject.pattern,
                "likes": [f"%{needle.lower()}%" for needle in subject.needles],
                "digits": digits,
                "external_id": subject.external_id,
            },
        )
        return [(int(pk), int(run_id)) for pk, run_id in cursor.fetchall()]


def import_rows_export(*, contact: Contact) -> dict[str, Any]:
    """For the contact's export (Art. 15): the import report lines about them, as kept."""
    ids = [pk for pk, _ in _rows_about(erasure_subject(contact))]
    rows = (
        ImportRefusedRow.objects.filter(pk__in=ids)
        .select_related("run")
        .order_by("run__started_at", "row")
    )
    return {
        "import_refusals": [
            {
                "import": r.run_id,
                "file": r.run.file_name,
                "imported_at": r.run.started_at.isoformat(),
                "row": r.row,
                "field": r.field,
                "reason": r.message,
                "values": dict(zip(r.run.columns, r.values, strict=False)),
            }
            for r in rows
        ]
    }


def import_rows_erase(*, subject: ErasureSubject) -> int:
    """Strip the person's lines from every import report of their workspace, count them on the
    run (its totals stay as they were), and discard the workspace's uploads still waiting for
    confirmation: an upload is a raw file (a compressed spreadsheet, any encoding) that cannot be
    searched reliably, and it is only a preview's copy; the member uploads it again, and the
    person's row is then refused as erased. Returns the refused rows removed."""
    found = _rows_about(subject)
    per_run: dict[int, int] = {}
    for _, run_id in found:
        per_run[run_id] = per_run.get(run_id, 0) + 1
    with transaction.atomic():
        ImportRefusedRow.objects.filter(pk__in=[pk for pk, _ in found]).delete()
        for run_id, count in per_run.items():
            ImportRun.objects.filter(pk=run_id).update(erased_rows=F("erased_rows") + count)
        ImportUpload.objects.filter(workspace_id=subject.workspace_id).delete()
    return len(found)
