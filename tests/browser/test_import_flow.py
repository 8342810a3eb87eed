"""A marketer imports a contact file in a real browser: the preview lists the refused row, the
confirmation imports the others, and the Imports page shows the run and downloads its refused
rows, escaped for a spreadsheet; the page has no serious or critical accessibility violation."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from contacts.models import Contact, ImportRun, ImportUpload
from continuity.models import Role
from tests.browser import Browser, browser, chromium_path, sign_in  # noqa: F401 - fixtures
from tests.browser.test_marketer_flow import _axe_serious
from tests.workspaces import make_member, workspace_for_tests

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_a_marketer_imports_a_file_and_downloads_its_refused_rows(
    browser: Browser,  # noqa: F811 - the fixture imported above
    live_server: Any,
    tmp_path: Path,
) -> None:
    people = tmp_path / "autumn-fair.csv"
    people.write_text(
        "external_id,email,first_name\n"
        "F1,fiona@example.com,Fiona\n"
        'F2,not-an-email,=HYPERLINK("http://x.example")\n'
        "F3,gus@example.com,Gus\n"
    )
    client = Client()
    client.force_login(make_member(workspace=workspace_for_tests(), role=Role.MARKETER))
    sign_in(browser, base_url=live_server.url, session_key=client.cookies["sessionid"].value)
    page = browser.page

    page.goto(f"{live_server.url}/admin/contacts/contact/import/")
    page.set_input_files("#id_import_file", str(people))
    page.select_option("#id_format", label="csv")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("is not a valid email address")).to_be_visible()
    assert ImportUpload.objects.count() == 1  # kept for the confirmation, in the database
    page.get_by_role("button", name="Confirm import").click()
    page.wait_for_selector(".messagelist")
    assert set(Contact.objects.values_list("external_id", flat=True)) == {"F1", "F3"}
    assert not ImportUpload.objects.exists()

    page.goto(f"{live_server.url}/admin/contacts/importrun/")
    page.get_by_role("link", name="Download the refused rows (CSV)").wait_for()
    run = ImportRun.objects.get()
    page.goto(f"{live_server.url}/admin/contacts/importrun/{run.pk}/change/")
    expect(page.locator("table.import-refused")).to_contain_text("not-an-email")
    assert _axe_serious(browser) == []
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the refused rows (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == f"autumn-fair-{run.pk}-refused.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][:4] == ["3", "email", rows[1][2], "F2"]
    assert rows[1][5] == '\'=HYPERLINK("http://x.example")'
