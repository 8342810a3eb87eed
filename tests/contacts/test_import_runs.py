"""Import error reports and admin uploads are the install's (#19): recorded per run, read back
by the Imports page and `manage.py import_report`, owned by a workspace and a member, expired by
retention, and reached by erasure (tests/delivery/test_erasure.py searches the whole database)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from contacts.management.commands import import_contacts
from contacts.models import Contact, ImportRefusedRow, ImportRun, ImportUpload, ImportVia
from contacts.privacy import contact_erase, contact_export
from continuity import retention_rules as rules
from continuity.models import Role
from continuity.retention import retention_run
from tests.contacts.factories import import_file, make_contact
from tests.workspaces import make_member, make_workspace, workspace_for_tests

pytestmark = pytest.mark.django_db

SHOP = (
    b"external_id,email,first_name\n"
    b"A1,ann@example.com,Ann\n"
    b'A2,not-an-email,=HYPERLINK("http://x.example")\n'
    b"A3,cy@example.com,<script>alert(1)</script>\n"
)


def _member_client(workspace: Any = None, role: str = Role.MARKETER) -> tuple[Client, Any]:
    user = make_member(workspace=workspace or workspace_for_tests(), role=role)
    client = Client()
    client.force_login(user)
    return client, user


def _preview(client: Client, content: bytes, name: str = "shop.csv") -> Any:
    upload = io.BytesIO(content)
    upload.name = name
    return client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
    )


def _confirm_fields(html: str) -> dict[str, str]:
    return dict(
        re.findall(
            r'name="(import_file_name|original_file_name|format|resource)"[^>]*value="([^"]*)"',
            html,
        )
    )


def _command(path: Path, *args: str) -> str:
    return import_file(path, "--single-process", *args)


# --- the admin import -----------------------------------------------------------------------------


def test_an_admin_import_keeps_its_upload_until_confirmed_and_records_its_refused_rows() -> None:
    client, user = _member_client()
    preview = _preview(client, SHOP)
    assert preview.status_code == 200
    upload = ImportUpload.objects.get()
    assert (upload.workspace_id, upload.uploaded_by_id) == (workspace_for_tests().pk, user.pk)
    assert bytes(upload.content) == SHOP

    done = client.post(
        "/admin/contacts/contact/process_import/", _confirm_fields(preview.content.decode())
    )
    assert done.status_code == 302
    assert set(Contact.objects.values_list("external_id", flat=True)) == {"A1", "A3"}
    assert not ImportUpload.objects.exists()  # confirmed: gone
    run = ImportRun.objects.get()
    assert (run.via, run.file_name, run.rows, run.created, run.refused) == (
        ImportVia.ADMIN,
        "shop.csv",
        3,
        2,
        1,
    )
    assert run.finished_at is not None and run.actor_label == user.username
    refused = ImportRefusedRow.objects.get(run=run)
    assert (refused.row, refused.field) == (3, "email")
    assert refused.values == ["A2", "not-an-email", '=HYPERLINK("http://x.example")']


def test_a_file_over_the_admin_limit_is_refused_with_the_reason(settings: Any) -> None:
    settings.CONTACTS_ADMIN_IMPORT_MAX_BYTES = 1024
    client, _user = _member_client()
    response = _preview(client, b"email\n" + b"x@example.com\n" * 100, name="big.csv")
    assert response.status_code == 200
    html = response.content.decode()
    assert "the admin imports files up to 1.0\xa0KB" in html
    assert "manage.py import_contacts" in html
    assert not ImportUpload.objects.exists() and not Contact.objects.exists()


def test_a_preview_that_cannot_be_confirmed_leaves_no_upload() -> None:
    client, _user = _member_client()
    response = _preview(client, b"email\nnot-an-email\nalso-bad\n")
    assert response.status_code == 200
    assert "confirm_form" not in (response.context or {}) or not response.context["confirm_form"]
    assert not ImportUpload.objects.exists()
    assert not ImportRun.objects.exists()  # a preview is not an import


def test_another_member_or_workspace_cannot_confirm_someone_elses_upload() -> None:
    owner, _user = _member_client()
    fields = _confirm_fields(_preview(owner, SHOP).content.decode())
    colleague, _ = _member_client()
    other_workspace, _ = _member_client(make_workspace())
    for intruder in (colleague, other_workspace):
        answer = intruder.post("/admin/contacts/contact/process_import/", fields, follow=True)
        assert answer.status_code == 200
        assert "no longer available" in answer.content.decode()
    assert not Contact.objects.exists()
    assert ImportUpload.objects.count() == 1  # still the owner's to confirm
    # A name that is a path (the temporary-folder storage joined it to /tmp) finds nothing.
    forged = {**fields, "import_file_name": "/etc/passwd"}
    answer = owner.post("/admin/contacts/contact/process_import/", forged, follow=True)
    assert "no longer available" in answer.content.decode()
    assert not Contact.objects.exists()


def test_an_erasure_discards_pending_uploads_and_the_confirm_step_says_so() -> None:
    client, _user = _member_client()
    fields = _confirm_fields(_preview(client, SHOP).content.decode())
    contact_erase(contact=make_contact(email="someone@example.com"))
    assert not ImportUpload.objects.exists()
    answer = client.post("/admin/contacts/contact/process_import/", fields, follow=True)
    assert "Upload the file again" in answer.content.decode()
    assert answer.redirect_chain[-1][0].endswith("/admin/contacts/contact/import/")
    assert not Contact.objects.filter(external_id__in=["A1", "A3"]).exists()


# --- the Imports page -----------------------------------------------------------------------------


def test_the_imports_page_shows_a_run_and_downloads_its_report_escaped(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(SHOP.replace(b"A1,ann@example.com", b"A1,@SUM(1)"))
    _command(path)
    run = ImportRun.objects.get()
    client, _user = _member_client()

    listing = client.get("/admin/contacts/importrun/")
    assert listing.status_code == 200 and "people.csv" in listing.content.decode()
    page = client.get(f"/admin/contacts/importrun/{run.pk}/change/").content.decode()
    assert "&lt;script&gt;" not in page  # A3 was imported: its row is not in the report
    assert "not-an-email" in page and "Download the refused rows" in page
    assert "<script>" not in page.split("<body", 1)[1].replace("<script src=", "")

    download = client.get(f"/admin/contacts/importrun/{run.pk}/report.csv")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="people-{run.pk}-refused.csv"'
    text = b"".join(download.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["row", "field", "message", "external_id", "email", "first_name"]
    cells = {row[3]: row for row in rows[1:]}
    assert cells["A1"][4] == "'@SUM(1)"  # a formula cell is text in a spreadsheet
    assert cells["A2"][5] == '\'=HYPERLINK("http://x.example")'


def test_the_imports_page_is_the_workspaces_own_and_not_for_viewers(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(SHOP)
    _command(path)
    run = ImportRun.objects.get()
    stranger, _ = _member_client(make_workspace(), role=Role.OWNER)
    assert stranger.get(f"/admin/contacts/importrun/{run.pk}/report.csv").status_code == 404
    assert "people.csv" not in stranger.get("/admin/contacts/importrun/").content.decode()
    viewer, _ = _member_client(role=Role.VIEWER)
    assert viewer.get(f"/admin/contacts/importrun/{run.pk}/report.csv").status_code == 403
    assert viewer.get("/admin/contacts/importrun/").status_code == 403
    privacy, _ = _member_client(role=Role.PRIVACY)
    assert privacy.get(f"/admin/contacts/importrun/{run.pk}/report.csv").status_code == 200


# --- the command --------------------------------------------------------------------------------


def test_the_command_prints_its_run_and_writes_no_file_beside_the_input(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(SHOP)
    output = _command(path)
    run = ImportRun.objects.get()
    assert f"import_report {run.pk}" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv"]
    assert (run.via, run.rows, run.created, run.refused) == (ImportVia.COMMAND, 3, 2, 1)

    target = tmp_path / "errors.csv"
    call_command("import_report", str(run.pk), "--output", str(target), stderr=io.StringIO())
    assert "not-an-email" in target.read_text()


def test_the_old_report_option_and_bad_run_numbers_are_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(SHOP)
    with pytest.raises(CommandError, match="import_report RUN"):
        _command(path, "--report", str(tmp_path / "r.csv"))
    assert not Contact.objects.exists()
    with pytest.raises(CommandError, match="no import number 999999"):
        call_command("import_report", "999999")
    with pytest.raises(CommandError, match="not an import number"):
        call_command("import_report", "12; DROP TABLE")


def test_an_interrupted_import_stays_open_with_how_far_it_got(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{i}@example.com\n" for i in range(6)) + "bad\n")
    real = import_contacts.contacts_upsert_parsed
    calls = {"n": 0}

    def dies_on_the_second_batch(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(**kwargs)

    monkeypatch.setattr(import_contacts, "contacts_upsert_parsed", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _command(path, "--batch-size", "3")
    run = ImportRun.objects.get()
    assert run.finished_at is None
    assert (run.rows, run.created) == (6, 3)


# --- retention ------------------------------------------------------------------------------------


def test_retention_expires_old_reports_with_their_rows_and_unconfirmed_uploads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(SHOP)
    _command(path)
    _command(path)  # a second run of the same file: nothing new, A2 refused again
    old, recent = ImportRun.objects.order_by("pk")
    period = rules.DEFAULT_DAYS[rules.IMPORT_REPORTS]
    ImportRun.objects.filter(pk=old.pk).update(
        started_at=timezone.now() - timedelta(days=period, hours=1)
    )
    client, _user = _member_client()
    _preview(client, SHOP)
    ImportUpload.objects.update(created_at=timezone.now() - timedelta(days=1, hours=1))
    _preview(client, SHOP)  # today's: kept

    report = retention_run(kinds=[rules.IMPORT_REPORTS, rules.IMPORT_UPLOADS])

    assert report.deleted == {rules.IMPORT_REPORTS: 1, rules.IMPORT_UPLOADS: 1}
    assert list(ImportRun.objects.values_list("pk", flat=True)) == [recent.pk]
    assert set(ImportRefusedRow.objects.values_list("run_id", flat=True)) == {recent.pk}
    assert ImportUpload.objects.count() == 1


def test_an_erasure_takes_the_persons_lines_out_of_every_report_of_the_workspace(
    tmp_path: Path, settings: Any
) -> None:
    settings.CONTACTS_DEFAULT_PHONE_REGION = "IT"
    person = make_contact(email="dora@example.com", phone="+393331234567", external_id="D-1")
    path = tmp_path / "people.csv"
    path.write_text(
        "external_id,email,phone,timezone\n"
        "D-1,,,Mars/Base\n"  # their external id only
        ",DORA@EXAMPLE.COM,,Mars/Base\n"
        ",,333 123 4567,Mars/Base\n"  # their mobile in the national format
        "X-9,other@example.com,,Mars/Base\n"
    )
    _command(path)
    run = ImportRun.objects.get()
    assert run.refused == 4
    # Their export lists the three lines about them, under the file's columns.
    refusals = contact_export(contact=person)["import_refusals"]
    assert [(r["row"], r["field"]) for r in refusals] == [
        (2, "timezone"),
        (3, "timezone"),
        (4, "timezone"),
    ]
    assert refusals[2]["values"]["phone"] == "333 123 4567"
    # Another workspace's report that names the same address is not theirs to touch.
    elsewhere = ImportRun.objects.create(workspace=make_workspace(), via=ImportVia.COMMAND)
    ImportRefusedRow.objects.create(
        workspace=elsewhere.workspace,
        run=elsewhere,
        row=2,
        field="timezone",
        message="x",
        values=["dora@example.com"],
    )

    contact_erase(contact=person)

    run.refresh_from_db()
    assert run.erased_rows == 3
    assert [r.values[0] for r in run.refused_rows.all()] == ["X-9"]
    assert ImportRefusedRow.objects.filter(run=elsewhere).count() == 1


def test_with_the_database_gone_the_import_fails_with_the_databases_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    path = tmp_path / "people.csv"
    path.write_text("email\np@example.com\n")

    def gone(**kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    def cannot_record(**kwargs: Any) -> None:
        raise OperationalError("no connection to the server")

    monkeypatch.setattr(import_contacts, "contacts_upsert_parsed", gone)
    monkeypatch.setattr(import_contacts, "import_run_finish", cannot_record)
    with pytest.raises(OperationalError, match="server closed the connection"):
        _command(path)
