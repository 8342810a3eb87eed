"""`manage.py import_contacts --workspace SLUG FILE`: stream a large CSV into one workspace's CRM
in constant memory.

Reads the file line by line, upserts in batches (a few set-based statements per batch, see
contacts.upsert), prints progress, and records the run and every refused row, with the reason
and the original values, in the install (contacts.import_runs): ``manage.py import_report RUN``
or the admin's Imports page gives the error report. It is not written next to the file: a copy
on the operator's disk would be out of reach of erasure and retention.

Reading and parsing run in a forked child one batch ahead of the writes (continuity.batching):
on two cores the parse of the next batch overlaps the database's work on the current one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils.translation import gettext as _

from contacts.consent import Evidence
from contacts.import_runs import import_rows_refuse, import_run_finish, import_run_start
from contacts.models import ConsentSource, ImportRun, ImportVia
from contacts.privacy import AUDIT_IMPORT_FILE
from contacts.upsert import (
    KNOWN_COLUMNS,
    ParsedRow,
    RowResult,
    SeenKeys,
    UpsertReport,
    contact_rows_parse,
    contacts_tables_analyze,
    contacts_upsert_parsed,
)
from continuity.audit import audit_record
from continuity.batching import collection_per_batch, read_ahead
from continuity.models import Workspace
from continuity.spreadsheet import spreadsheet_cell_restore
from continuity.tenancy import access_for
from continuity.workspaces import COMMAND_ACTOR


def _header_name(raw: str) -> str:
    return raw.strip().lower().replace(" ", "_").replace("-", "_")


class _Lines:
    """Decodes a binary file line by line, remembering which physical lines were not valid in
    the declared encoding, so the rows that contain them are refused by number instead of
    aborting the whole file or importing mojibake."""

    def __init__(self, handle: IO[bytes], encoding: str) -> None:
        self.handle = handle
        self.encoding = encoding
        self.bad: set[int] = set()
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            self.number += 1
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError:
                self.bad.add(self.number)
                yield raw.decode(self.encoding, errors="replace")


@dataclass
class _Header:
    columns: list[str]
    unknown: list[str]


@dataclass
class _Chunk:
    """One batch, read and parsed, ready to write."""

    rows: int  # non-blank rows read since the previous chunk, refused ones included
    refused: list[tuple[int, str, str, list[str]]]  # (row, field, message, record) by shape
    parsed: list[ParsedRow]
    failed: list[RowResult]
    records: dict[int, list[str]]  # the original values of every parsed or failed row


class _FileChunks:
    """Everything before the database: decoding, CSV, the header and row-shape checks, and the
    parse of each batch. The batches are made in the read-ahead child: they report only through
    what they yield, never write to the command's output, and never touch the database."""

    def __init__(
        self,
        path: Path,
        *,
        encoding: str,
        delimiter: str,
        batch_size: int,
        evidence: Evidence,
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.batch_size = batch_size
        self.evidence = evidence

    def header(self) -> _Header:
        """The checked header; a CommandError when the file cannot be imported at all."""
        with self.path.open("rb") as handle:
            lines = _Lines(handle, self.encoding)
            return self._header(csv.reader(lines, delimiter=self._delimiter()), lines)

    def __call__(self) -> Iterator[_Chunk]:
        """The file's batches, read and parsed; the header was checked by `header()`."""
        columns = self.header().columns
        with self.path.open("rb") as handle:
            lines = _Lines(handle, self.encoding)
            reader = csv.reader(lines, delimiter=self._delimiter())
            next(reader)
            rows = 0
            refused: list[tuple[int, str, str, list[str]]] = []
            batch: list[tuple[int, dict[str, str], list[str]]] = []
            previous_line = lines.number
            for record in self._records(reader):
                # Runs once per row: the checks below cost nothing on a clean file.
                row = reader.line_num
                bad = bool(lines.bad) and any(
                    n in lines.bad for n in range(previous_line + 1, row + 1)
                )
                previous_line = row
                if not "".join(record).strip():
                    continue  # a blank line, or only separators and spaces
                rows += 1
                problem = self._shape_problem(record, columns, bad)
                if problem:
                    refused.append((row, problem[0], problem[1], record))
                    continue
                # A cell the error report (or an export) escaped against formula injection
                # comes back as it was typed, as in the admin import.
                values = [spreadsheet_cell_restore(value=cell) for cell in record]
                batch.append((row, dict(zip(columns, values, strict=True)), record))
                if len(batch) >= self.batch_size:
                    yield self._chunk(rows, refused, batch)
                    rows, refused, batch = 0, [], []
            if rows:
                yield self._chunk(rows, refused, batch)

    def _chunk(
        self,
        rows: int,
        refused: list[tuple[int, str, str, list[str]]],
        batch: list[tuple[int, dict[str, str], list[str]]],
    ) -> _Chunk:
        parsed, failed = contact_rows_parse(
            raws=[raw for _, raw, _ in batch],
            row_numbers=[row for row, _, _ in batch],
            blank_means_unchanged=True,
            default_evidence=self.evidence,
        )
        return _Chunk(
            rows=rows,
            refused=refused,
            parsed=parsed,
            failed=failed,
            records={row: record for row, _, record in batch},
        )

    def _delimiter(self) -> str:
        if self.delimiter:
            return self.delimiter
        with self.path.open("rb") as handle:
            first = handle.readline().decode(self.encoding, errors="replace")
        counts = {d: first.count(d) for d in (",", ";", "\t")}
        return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","

    def _records(self, reader: Any) -> Iterator[list[str]]:
        try:
            yield from reader
        except csv.Error as exc:
            raise CommandError(
                _(
                    "%(path)s: line %(line)s is not CSV text (%(error)s); is the file really CSV "
                    "in the given --encoding (UTF-8 by default)?"
                )
                % {"path": self.path, "line": reader.line_num, "error": exc}
            ) from None

    def _header(self, reader: Any, lines: _Lines) -> _Header:
        try:
            first = next(reader, None)
        except csv.Error as exc:
            raise CommandError(
                _("the header line is not CSV text (%(error)s)") % {"error": exc}
            ) from None
        if first is None:
            raise CommandError(
                _("the file is empty: expected a header line, then one contact a line")
            )
        if lines.bad:
            raise CommandError(
                _(
                    "the header line is not valid text in the given encoding: save the file as "
                    "UTF-8 or pass --encoding (for example --encoding cp1252)"
                )
            )
        header = [_header_name(h) for h in first]
        if not {"external_id", "email", "phone"} & set(header):
            raise CommandError(
                _(
                    "missing header: the first line must name the columns and include at least "
                    "one of external_id, email, phone (found: %(found)s)"
                )
                % {"found": ", ".join(first)[:200]}
            )
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise CommandError(
                _("the header repeats the column(s) %(columns)s")
                % {"columns": ", ".join(duplicates)}
            )
        unknown = [h for h in header if h not in KNOWN_COLUMNS and not h.startswith("attr_")]
        return _Header(columns=header, unknown=unknown)

    def _shape_problem(
        self, record: list[str], header: list[str], bad_bytes: bool
    ) -> tuple[str, str] | None:
        if bad_bytes:
            return (
                "encoding",
                _(
                    "bytes that are not valid %(encoding)s: save the file as UTF-8 or pass "
                    "--encoding"
                )
                % {"encoding": self.encoding},
            )
        if len(record) != len(header):
            return (
                "columns",
                _("%(values)s values but the header has %(columns)s columns")
                % {"values": len(record), "columns": len(header)},
            )
        return None


class Command(BaseCommand):
    help = "Import contacts from a CSV file (streamed; progress and a row-level error report)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--workspace",
            required=True,
            help="slug of the workspace the contacts belong to (matching happens inside it)",
        )
        parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
        parser.add_argument("--encoding", default="utf-8-sig")
        parser.add_argument("--delimiter", default="", help="default: sniffed from the header")
        parser.add_argument("--batch-size", type=int, default=settings.CONTACTS_IMPORT_BATCH_SIZE)
        parser.add_argument("--recorded-by", default="import_contacts")
        parser.add_argument(
            "--progress-every", type=float, default=2.0, help="seconds between progress lines"
        )
        parser.add_argument(
            "--single-process",
            action="store_true",
            help="read and parse in this process instead of a forked one (slower; for debugging)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            slugs = Workspace.objects.order_by("slug").values_list("slug", flat=True)[:20]
            known = ", ".join(slugs)
            raise CommandError(
                _("no workspace with the slug %(slug)r (known: %(known)s)")
                % {"slug": options["workspace"], "known": known or _("none")}
            )
        self._workspace = workspace
        if options["report"]:
            raise CommandError(
                _(
                    "--report is gone: the install keeps each import's error report (so an "
                    "erasure and retention reach it). After the import, write it with "
                    "`manage.py import_report RUN > FILE`; the command prints RUN."
                )
            )
        if not path.is_file():
            raise CommandError(_("%(path)s: no such file") % {"path": path})
        chunks = _FileChunks(
            path,
            encoding=options["encoding"],
            delimiter=options["delimiter"],
            batch_size=max(1, int(options["batch_size"])),
            evidence=Evidence(
                source=ConsentSource.IMPORT,
                source_detail=path.name,
                recorded_by=options["recorded_by"],
            ),
        )
        self._analyzed_at = 0
        started = time.monotonic()
        totals = {"rows": 0, "created": 0, "updated": 0, "unchanged": 0, "errors": 0}
        header = chunks.header()
        run = import_run_start(
            workspace=workspace,
            via=ImportVia.COMMAND,
            file_name=path.name,
            columns=header.columns,
            actor=options["recorded_by"],
        )
        if header.unknown:
            self.stderr.write(
                _("ignoring unknown columns: %(columns)s (name free attributes attr_<name>)")
                % {"columns": ", ".join(header.unknown)}
            )
        try:
            self._import(chunks, run, totals, started, options)
        except BaseException:
            # An interrupted run shows how far it got, and stays unfinished; with the database
            # gone it cannot, and the original error is what the operator must see.
            with contextlib.suppress(DatabaseError):
                import_run_finish(run=run, totals=totals, finished=False)
            raise
        import_run_finish(run=run, totals=totals)
        elapsed = time.monotonic() - started
        # The import is in the workspace's audit trail like one made in the admin; the actor is
        # the command (the shell has no signed-in user).
        audit_record(
            access=access_for(AnonymousUser(), None),
            action=AUDIT_IMPORT_FILE,
            workspace=workspace,
            detail={"file": path.name, "via": "import_contacts", "run": run.pk, **totals},
            actor_label=COMMAND_ACTOR,
        )
        self._progress(totals, elapsed)
        self.stdout.write(
            _(
                "done: %(rows)s rows in %(elapsed)ss: %(created)s created, %(updated)s updated, "
                "%(unchanged)s unchanged, %(errors)s refused"
            )
            % {**totals, "elapsed": f"{elapsed:.2f}"}
        )
        if totals["errors"]:
            self.stdout.write(
                _(
                    "error report: import %(run)s (`manage.py import_report %(run)s > FILE`, or "
                    "the admin's Imports page)"
                )
                % {"run": run.pk}
            )

    def _import(
        self,
        chunks: _FileChunks,
        run: ImportRun,
        totals: dict[str, int],
        started: float,
        options: dict[str, Any],
    ) -> None:
        with (
            read_ahead(chunks, in_child=not options["single_process"]) as items,
            collection_per_batch() as collect,
        ):
            seen = SeenKeys()
            last_progress = started
            for chunk in items:
                totals["rows"] += chunk.rows
                # Shape errors first, as they were read, then the batch's value errors.
                totals["errors"] += import_rows_refuse(run=run, refused=chunk.refused)
                self._flush(chunk, run, seen, totals)
                del chunk
                collect()
                now = time.monotonic()
                if now - last_progress >= options["progress_every"]:
                    self._progress(totals, now - started)
                    last_progress = now

    def _flush(self, chunk: _Chunk, run: ImportRun, seen: SeenKeys, totals: dict[str, int]) -> None:
        if not (chunk.parsed or chunk.failed):
            return
        result: UpsertReport = contacts_upsert_parsed(
            workspace=self._workspace, parsed=chunk.parsed, failed=chunk.failed, seen=seen
        )
        for status in ("created", "updated", "unchanged"):
            totals[status] += result.count(status)
        # Each time the import has quadrupled what it wrote, refresh the planner's statistics
        # (a few ANALYZEs per file; without them the per-batch lookups degrade to full scans).
        written = totals["created"] + totals["updated"]
        if written >= 4 * self._analyzed_at:
            contacts_tables_analyze()
            self._analyzed_at = max(written, 1)
        refused = [r for r in result.results if r.status == "error"]
        totals["errors"] += len(refused)
        import_rows_refuse(
            run=run,
            refused=(
                (error.row, error.field, error.message, chunk.records[error.row])
                for row_result in refused
                for error in row_result.errors
            ),
        )

    def _progress(self, totals: dict[str, int], elapsed: float) -> None:
        rate = totals["rows"] / elapsed if elapsed > 0 else 0.0
        self.stdout.write(
            _("progress: %(rows)s rows, %(rate)s rows/s, %(errors)s errors so far")
            % {"rows": totals["rows"], "rate": f"{rate:,.0f}", "errors": totals["errors"]}
        )
        self.stdout.flush()
