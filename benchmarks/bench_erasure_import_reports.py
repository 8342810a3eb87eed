"""erasure.import_reports_s: one contact's erasure in a workspace whose import error reports hold
100,000 refused rows at full scale (contacts/import_runs.py scans them whole for the person's
lines), in its own PostgreSQL database.

The rows are five cells each (external id, email, phone, name, a bad time zone), all different
people; three name the person (their email, their number typed in the national format with
spaces, their external id) and must go, and nothing else. Reported: the whole erasure's time
(contacts.privacy.contact_erase, in which the report scan is the part that grows) and the scan's
own time.
"""

from __future__ import annotations

import os
import time

from benchmarks._common import emit, setup_django, sized
from benchmarks.bench_crm_import import bench_database

POPULATE = """
INSERT INTO contacts_importrefusedrow (workspace_id, run_id, row, field, message, "values")
SELECT %(workspace)s, %(run)s, g + 1, 'timezone', 'Mars/Base is not a time zone',
       ARRAY['X' || g, 'p' || g || '@example.com', '+3933' || lpad(g::text, 8, '0'),
             'Name' || g, 'Mars/Base']
FROM generate_series(1, %(n)s) g
"""


def main() -> None:
    n = sized(full=100_000, small=5_000)
    with bench_database("continuity_bench_erasure_reports") as url:
        os.environ["DATABASE_URL"] = url
        setup_django()
        from django.db import connection

        from contacts.import_runs import _rows_about
        from contacts.models import Contact, ImportRefusedRow, ImportRun, ImportVia
        from contacts.privacy import contact_erase, erasure_subject
        from continuity.models import Workspace

        workspace = Workspace.objects.create(slug="bench-erasure", name="Erasure")
        run = ImportRun.objects.create(
            workspace=workspace,
            via=ImportVia.COMMAND,
            file_name="people.csv",
            columns=["external_id", "email", "phone", "first_name", "timezone"],
        )
        with connection.cursor() as cursor:
            cursor.execute(POPULATE, {"workspace": workspace.pk, "run": run.pk, "n": n})
        person = Contact.objects.create(
            workspace=workspace, external_id="P-1", email="dora@example.com", phone="+393331234567"
        )
        ImportRefusedRow.objects.bulk_create(
            ImportRefusedRow(
                workspace=workspace,
                run=run,
                row=n + 2 + i,
                field="timezone",
                message="bad",
                values=v,
            )
            for i, v in enumerate(
                (
                    ["", "DORA@example.com", "", "", "Mars/Base"],
                    ["", "", "333 123 4567", "", "Mars/Base"],
                    ["P-1", "", "", "", "Mars/Base"],
                )
            )
        )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE contacts_importrefusedrow")

        started = time.perf_counter()
        found = _rows_about(erasure_subject(person))
        scan_s = time.perf_counter() - started
        assert len(found) == 3, found

        started = time.perf_counter()
        contact_erase(contact=person)
        erase_s = time.perf_counter() - started
        run.refresh_from_db()
        left = ImportRefusedRow.objects.filter(run=run).count()
    assert run.erased_rows == 3, run.erased_rows
    assert left == n, (left, n)
    emit(
        "erasure.import_reports_s",
        erase_s,
        "s",
        target="an erasure stays a few seconds at most, however large the reports",
        refused_rows=n + 3,
        removed=run.erased_rows,
        report_scan_s=round(scan_s, 3),
    )


if __name__ == "__main__":
    main()
