from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.test import Client

from contacts.models import Consent, ConsentEvent, Contact, ContactTag
from tests.contacts.factories import import_file, last_import_report
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db

HEADER = "external_id,email,phone,first_name,timezone,tags,consent_email_marketing,attr_city\n"


# By default the file is read and parsed in a forked process; --single-process must not differ.
@pytest.mark.parametrize("mode", [(), ("--single-process",)], ids=["read-ahead", "one-process"])
def test_the_command_imports_good_rows_and_reports_each_bad_one(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        HEADER
        + "E1,a@example.com,+33612345678,Ann,Europe/Paris,vip;fr,yes,Lyon\n"
        + "E2,bad-email,,Bob,,,,\n"
        + "E3,c@example.com,0612345678,Cy,,,,\n"
        + "E4,d@example.com,,Di,Mars/Base,,,\n"
        + "E5,A@example.com,,Dup,,,,\n"
        + "E6,f@example.com,,Fay,,,,\n"
        + "E7,too,many,values,,,,,,,\n"
    )
    output = import_file(path, *mode)
    assert "progress: 7 rows" in output
    assert "2 created" in output and "5 refused" in output
    # Shape errors are written as they are read, value errors when their batch is written.
    rows = sorted(last_import_report(), key=lambda r: int(r["row"]))
    assert [(r["row"], r["field"]) for r in rows] == [
        ("3", "email"),
        ("4", "phone"),
        ("5", "timezone"),
        ("6", "email"),
        ("8", "columns"),
    ]
    assert "no country code" in rows[1]["message"]
    assert "duplicate email 'a@example.com': already in row 2" in rows[3]["message"]
    assert rows[0]["email"] == "bad-email"  # the original values, ready to fix and re-import
    ann = Contact.objects.get(external_id="E1")
    assert ann.attributes == {"city": "Lyon"} and str(ann.phone) == "+33612345678"
    assert set(ContactTag.objects.filter(contact=ann).values_list("tag__name", flat=True)) == {
        "vip",
        "fr",
    }
    event = ConsentEvent.objects.get(contact=ann)
    assert (event.source, event.source_detail) == ("import", "people.csv")
    assert Consent.objects.get(contact=ann).state == "granted"


def test_duplicates_are_caught_across_batches(tmp_path: Path) -> None:
    path = tmp_path / "dups.csv"
    path.write_text("email\n" + "".join(f"u{i % 3}@example.com\n" for i in range(6)))
    output = import_file(path, "--batch-size", "2")
    assert "3 created" in output and "3 refused" in output
    assert {r["message"].split(":")[0] for r in last_import_report()} == {
        "duplicate email 'u0@example.com'",
        "duplicate email 'u1@example.com'",
        "duplicate email 'u2@example.com'",
    }


def test_a_file_without_a_usable_header_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text("a@example.com,Ann\nb@example.com,Bob\n")
    with pytest.raises(CommandError, match="missing header"):
        import_file(path)
    assert not Contact.objects.exists()


def test_rows_in_the_wrong_encoding_are_refused_by_row_and_the_rest_imported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"email,first_name\n"
        b"ok@example.com,Zoe\n"
        + "bad@example.com,Ren\u00e9e\n".encode("latin-1")
        + b"ok2@example.com,Max\n"
    )
    output = import_file(path)
    assert "2 created" in output and "1 refused" in output
    rows = last_import_report()
    assert [(r["row"], r["field"]) for r in rows] == [("3", "encoding")]
    assert "--encoding" in rows[0]["message"]
    # With the right encoding the same file goes in whole.
    assert "1 created" in import_file(path, "--encoding", "latin-1")
    assert Contact.objects.get(email="bad@example.com").first_name == "Ren\u00e9e"


def test_a_binary_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes("email\na@example.com\n".encode("utf-16"))
    with pytest.raises(CommandError, match="header"):
        import_file(path)


def test_blank_lines_and_lines_of_only_separators_are_skipped_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("email,first_name\n\na@example.com,Ann\n , \n,\nb@example.com,Bob\n")
    output = import_file(path)
    assert "done: 2 rows" in output and "2 created" in output and "0 refused" in output


def test_a_line_that_is_not_csv_stops_the_import_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "huge_field.csv"
    path.write_text("email,first_name\nok@example.com,Ann\nx@example.com," + "a" * 200_000 + "\n")
    with pytest.raises(CommandError, match="line 3 is not CSV text"):
        import_file(path)


def test_a_200000_row_file_streams_with_its_errors_reported(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("external_id,email\n")
        for i in range(200_000):
            handle.write(f"X{i},{'broken' if i % 50_000 == 7 else f'p{i}@example.com'}\n")
    output = import_file(path, "--batch-size", "10000")
    assert "199996 created" in output and "4 refused" in output
    assert Contact.objects.count() == 199_996
    rows = last_import_report()
    assert [r["row"] for r in rows] == [str(i + 2) for i in (7, 50_007, 100_007, 150_007)]


def test_the_admin_import_previews_then_imports_the_valid_rows(admin_client: Client) -> None:
    content = (
        b"external_id,email,first_name,consent_sms_marketing,phone\n"
        b"A1,ann@example.com,Ann,granted,+33612345678\n"
        b"A2,not-an-email,Bob,,\n"
        b"A3,cy@example.com,Cy,,\n"
    )
    upload = io.BytesIO(content)
    upload.name = "shop.csv"
    preview = admin_client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "not-an-email" in html and "is not a valid email address" in html
    assert "will be skipped" in html
    assert not Contact.objects.exists()  # the preview is a dry run
    fields = dict(
        re.findall(
            r'name="(import_file_name|original_file_name|format|resource)"[^>]*value="([^"]*)"',
            html,
        )
    )
    done = admin_client.post("/admin/contacts/contact/process_import/", fields)
    assert done.status_code == 302, done.content[:2000]
    assert set(Contact.objects.values_list("external_id", flat=True)) == {"A1", "A3"}
    ann = Contact.objects.get(external_id="A1")
    event = ConsentEvent.objects.get(contact=ann)
    assert (event.channel, event.source, event.source_detail, event.recorded_by) == (
        "sms",
        "import",
        "shop.csv",
        "admin",
    )


def test_the_admin_export_writes_csv_with_consent_columns(admin_client: Client) -> None:
    from tests.contacts.factories import granted_contact

    granted_contact(email="exp@example.com")
    response = admin_client.post(
        "/admin/contacts/contact/export/",
        {
            "format": "0",
            "resource": "0",
            **{f"contactresource_{f}": "on" for f in ("email", "consent_email_marketing")},
        },
    )
    assert response.status_code == 200, response.content[:500]
    text = response.getvalue().decode()
    assert "exp@example.com" in text and "granted" in text


def test_the_admin_refuses_a_file_without_identifier_columns(admin_client: Client) -> None:
    upload = io.BytesIO(b"name,city\nAnn,Lyon\n")
    upload.name = "noheader.csv"
    response = admin_client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert response.status_code == 200
    assert "missing header" in response.content.decode()
    assert not Contact.objects.exists()


def _export(admin_client: Client, *, fmt: str, columns: tuple[str, ...]) -> bytes:
    response = admin_client.post(
        "/admin/contacts/contact/export/",
        {"format": fmt, "resource": "0", **{f"contactresource_{f}": "on" for f in columns}},
    )
    assert response.status_code == 200, response.content[:500]
    return bytes(response.getvalue())


def test_the_csv_export_writes_formula_cells_as_text_and_imports_them_back(
    admin_client: Client,
) -> None:
    from tests.contacts.factories import make_contact

    make_contact(
        external_id="F1", first_name='=HYPERLINK("http://x")', last_name="@SUM(1)", phone=None
    )
    make_contact(external_id="F2", first_name="Ann", last_name="-2+3", phone="+33612345678")
    columns = ("external_id", "first_name", "last_name", "phone")
    text = _export(admin_client, fmt="0", columns=columns).decode()
    rows = {row["external_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["F1"]["first_name"] == '\'=HYPERLINK("http://x")'
    assert rows["F1"]["last_name"] == "'@SUM(1)"
    assert rows["F2"]["last_name"] == "'-2+3"
    assert rows["F2"]["phone"] == "'+33612345678"
    assert rows["F2"]["first_name"] == "Ann"

    # The apostrophe is the export's, not the data's: importing the file back changes nothing.
    Contact.objects.update(first_name="changed")
    upload = io.BytesIO(text.encode())
    upload.name = "roundtrip.csv"
    preview = admin_client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert preview.status_code == 200
    fields = dict(
        re.findall(
            r'name="(import_file_name|original_file_name|format|resource)"[^>]*value="([^"]*)"',
            preview.content.decode(),
        )
    )
    done = admin_client.post("/admin/contacts/contact/process_import/", fields)
    assert done.status_code == 302, done.content[:2000]
    f1 = Contact.objects.get(external_id="F1")
    f2 = Contact.objects.get(external_id="F2")
    assert (f1.first_name, f1.last_name) == ('=HYPERLINK("http://x")', "@SUM(1)")
    assert (f2.first_name, f2.last_name, str(f2.phone)) == ("Ann", "-2+3", "+33612345678")


def test_the_xlsx_export_writes_no_formula_cell(admin_client: Client) -> None:
    import openpyxl

    from tests.contacts.factories import make_contact

    make_contact(external_id="X1", first_name='=HYPERLINK("http://x")')
    body = _export(admin_client, fmt="1", columns=("external_id", "first_name"))
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    cells = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    assert cells["X1"].value == '\'=HYPERLINK("http://x")'
    assert cells["X1"].data_type == "s"


def test_an_import_from_the_shell_is_in_the_workspaces_audit_trail(tmp_path: Path) -> None:
    from continuity.models import AuditEvent

    path = tmp_path / "people.csv"
    path.write_text(HEADER + "E1,a@example.com,,Ann,,,,\nE2,bad-email,,Bob,,,,\n")
    import_file(path)
    event = AuditEvent.objects.get(action="contact.import_file")
    assert event.workspace == workspace_for_tests()
    assert event.actor is None and event.actor_label == "manage.py"
    assert event.detail["file"] == "people.csv"
    assert (event.detail["created"], event.detail["errors"]) == (1, 1)
