"""The admin's Imports page: each import of the workspace (the command's and the admin's), its
totals, its refused rows and their download as CSV. Read-only; for the members who import
contacts and the privacy role."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import admin
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts.import_runs import import_report_lines
from contacts.models import ImportRefusedRow, ImportRun
from continuity.admin_access import ReadOnlyAdminMixin, WorkspaceScopedAdmin, admin_view_require
from continuity.tenancy import workspace_get_or_404

VIEW_IMPORT_RUN = "contacts.view_importrun"
# The page lists the first rows; the download has them all.
_ROWS_ON_PAGE = 200

_DETAIL_FIELDS = (
    "file_name",
    "via",
    "actor_label",
    "started_at",
    "finished_at",
    "rows",
    "created",
    "updated",
    "unchanged",
    "refused",
    "erased_rows",
    "report_link",
    "refused_table",
)


class _Echo:
    """A file-like that hands back what csv.writer writes, for streaming."""

    def write(self, value: str) -> str:
        return value


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    list_display = [
        "started_at",
        "file_name",
        "via",
        "actor_label",
        "rows",
        "created",
        "updated",
        "unchanged",
        "refused",
        "state",
        "report_link",
    ]
    list_filter = ["via"]
    search_fields = ["file_name"]
    date_hierarchy = "started_at"
    ordering = ["-started_at"]
    fields = _DETAIL_FIELDS
    readonly_fields = _DETAIL_FIELDS

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:run_id>/report.csv",
                self.admin_site.admin_view(self.report_view),
                name="contacts_importrun_report",
            ),
            *super().get_urls(),
        ]

    @admin.display(description=gettext_lazy("state"))
    def state(self, run: ImportRun) -> str:
        if run.finished_at is None:
            return _("running or interrupted")
        return _("finished")

    @admin.display(description=gettext_lazy("error report"))
    def report_link(self, run: ImportRun) -> str:
        if not run.refused:
            return _("no refused rows")
        url = reverse("admin:contacts_importrun_report", args=[run.pk])
        return format_html('<a href="{}">{}</a>', url, _("Download the refused rows (CSV)"))

    @admin.display(description=gettext_lazy("refused rows"))
    def refused_table(self, run: ImportRun) -> str:
        rows = ImportRefusedRow.objects.filter(run=run).order_by("row", "pk")[:_ROWS_ON_PAGE]
        if not rows:
            return _("none")
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th>{}</tr>",
            _("row"),
            _("field"),
            _("reason"),
            format_html_join("", "<th>{}</th>", ((c,) for c in run.columns)),
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
            (
                (
                    r.row,
                    r.field,
                    r.message,
                    format_html_join("", "<td>{}</td>", ((v,) for v in r.values)),
                )
                for r in rows
            ),
        )
        more = ""
        if run.refused > _ROWS_ON_PAGE:
            more = format_html(
                "<p>{}</p>",
                _("The first %(shown)s rows; the download has them all.")
                % {"shown": _ROWS_ON_PAGE},
            )
        return format_html('<table class="import-refused">{}{}</table>{}', head, body, more)

    def report_view(self, request: HttpRequest, run_id: int) -> StreamingHttpResponse:
        access = admin_view_require(request, VIEW_IMPORT_RUN)
        run = workspace_get_or_404(ImportRun, workspace=access.workspace_required, pk=run_id)
        writer = csv.writer(_Echo())

        def lines() -> Iterator[str]:
            yield "\ufeff"  # Excel reads a UTF-8 file as such only with the mark
            for record in import_report_lines(run):
                yield writer.writerow(record)

        stem = get_valid_filename(run.file_name.rsplit(".", 1)[0] or "import") or "import"
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{stem}-{run.pk}-refused.csv"'
        return response
