"""`manage.py import_report RUN [--output FILE]`: an import's error report as CSV (the refused
rows with their reason and original values, under the file's own header), from the install's
record of the run (contacts.import_runs). Standard output by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from contacts.import_runs import import_report_write
from contacts.models import ImportRun


class Command(BaseCommand):
    help = "Write an import's error report (its refused rows) as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", help="the import's number, as import_contacts printed it")
        parser.add_argument("--output", type=Path, help="write to this file instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        run = ImportRun.objects.filter(pk=_number(options["run"])).first()
        if run is None:
            raise CommandError(
                _(
                    "no import number %(run)s (it may have expired: import reports are kept for "
                    "the retention period of import reports)"
                )
                % {"run": options["run"]}
            )
        output: Path | None = options["output"]
        if output is None:
            written = import_report_write(run, self.stdout)
        else:
            with output.open("w", newline="", encoding="utf-8") as handle:
                written = import_report_write(run, handle)
        note = _("%(rows)s refused rows of import %(run)s (%(file)s)") % {
            "rows": written,
            "run": run.pk,
            "file": run.file_name,
        }
        if run.erased_rows:
            note += " " + _("; %(erased)s removed by erasures") % {"erased": run.erased_rows}
        self.stderr.write(note)


def _number(raw: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise CommandError(
            _("%(run)r is not an import number (a whole number)") % {"run": raw}
        ) from None
    if number < 1 or number > 2**62:
        raise CommandError(_("%(run)r is not an import number") % {"run": raw})
    return number
