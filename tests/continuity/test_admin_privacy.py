"""The privacy officer's admin pages: retention periods (with what is due) and the records of
processing, each for the session's workspace and checked against the member's role."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts.models import PushSubscription
from continuity import retention_rules as rules
from continuity.admin_access import SESSION_KEY
from continuity.models import AuditEvent, AuditOutcome, RetentionPolicy, Role, Workspace
from delivery.models import Delivery, WorkspaceCredentials
from tests.campaigns.factories import make_account, make_message
from tests.contacts.factories import make_contact
from tests.workspaces import make_member, make_workspace

pytestmark = [pytest.mark.django_db]

RETENTION = "/admin/continuity/retentionpolicy/"
RECORDS = "/admin/continuity/retentionpolicy/records/"
DOWNLOAD = "/admin/continuity/retentionpolicy/records/download/"


def logged_in(user: Any, workspace: Workspace) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = workspace.pk
    session.save()
    return client


def test_the_urls_are_the_admins() -> None:
    assert reverse("admin:continuity_retentionpolicy_changelist") == RETENTION
    assert reverse("admin:continuity_retentionpolicy_records") == RECORDS


def test_the_privacy_officer_sees_each_kind_its_period_minimum_and_what_is_due() -> None:
    ws, other = make_workspace(), make_workspace()
    for workspace, n in ((ws, 2), (other, 5)):
        message = make_message(workspace=workspace)
        for _ in range(n):
            d = Delivery.objects.create(
                workspace=workspace,
                message=message,
                contact=make_contact(workspace=workspace),
                channel="email",
                status="delivered",
            )
            Delivery.objects.filter(pk=d.pk).update(created_at=timezone.now() - timedelta(days=500))
    page = logged_in(make_member(workspace=ws, role=Role.PRIVACY), ws).get(RETENTION)

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-kind="deliveries"' in html
    assert 'data-kind="consent_evidence"' in html
    row = html.split('data-kind="deliveries"')[1].split("</tr>")[0]
    assert "<td data-due>2</td>" in row
    assert "1826" in html


@pytest.mark.parametrize("role", [Role.MARKETER, Role.VIEWER])
def test_other_roles_are_refused_and_the_refusal_is_audited(role: str) -> None:
    ws = make_workspace()
    client = logged_in(make_member(workspace=ws, role=role), ws)
    for url in (RETENTION, RECORDS, f"{DOWNLOAD}?format=json"):
        assert client.get(url).status_code == 403
    assert client.post(RETENTION, {rules.DELIVERIES: "40"}).status_code == 403
    assert not RetentionPolicy.objects.exists()
    assert AuditEvent.objects.filter(workspace=ws, outcome=AuditOutcome.DENIED).count() == 4


def test_a_period_below_the_minimum_is_refused_on_the_page_and_a_valid_one_is_audited() -> None:
    ws = make_workspace()
    client = logged_in(make_member(workspace=ws, role=Role.PRIVACY), ws)

    refused = client.post(RETENTION, {rules.CONSENT_EVIDENCE: "30", rules.DELIVERIES: "40"})
    assert refused.status_code == 200
    assert "must be kept at least 1826 days" in refused.content.decode()
    assert not RetentionPolicy.objects.filter(workspace=ws).exists()

    saved = client.post(RETENTION, {rules.DELIVERIES: "40"})
    assert saved.status_code == 302
    assert RetentionPolicy.objects.get(workspace=ws).days == 40
    event = AuditEvent.objects.get(workspace=ws, action="retention.change")
    assert event.detail == {rules.DELIVERIES: {"from": None, "to": 40}}

    client.post(RETENTION, {rules.DELIVERIES: ""})
    assert not RetentionPolicy.objects.filter(workspace=ws).exists()


def test_the_records_name_the_processors_this_workspace_configured_and_no_others() -> None:
    ws, bare = make_workspace(), make_workspace()
    WorkspaceCredentials.objects.create(workspace=ws, sendgrid_api_key_encrypted="ciphertext")
    make_account(workspace=ws, network="facebook")
    make_account(workspace=ws, network="x")
    PushSubscription.objects.create(
        workspace=ws,
        contact=make_contact(workspace=ws),
        endpoint="https://fcm.googleapis.com/fcm/send/abc",
        p256dh="k",
        auth="a",
    )
    officer = make_member(workspace=ws, role=Role.PRIVACY)

    html = logged_in(officer, ws).get(RECORDS).content.decode()
    for name in ("SendGrid (Twilio Inc.)", "Meta Platforms", "X Corp.", "Google Firebase Cloud"):
        assert name in html
    assert "the workspace&#x27;s own account" in html

    bare_html = logged_in(make_member(workspace=bare, role=Role.OWNER), bare).get(RECORDS)
    # The install's own channels are every workspace's; the social accounts and browsers are not.
    assert "SendGrid (Twilio Inc.)" in bare_html.content.decode()
    assert "the install&#x27;s account" in bare_html.content.decode()
    assert "X Corp." not in bare_html.content.decode()
    assert "Google Firebase" not in bare_html.content.decode()


def test_the_records_download_as_json_and_csv_and_refuse_another_format() -> None:
    ws = make_workspace()
    make_account(workspace=ws, network="instagram")
    client = logged_in(make_member(workspace=ws, role=Role.PRIVACY), ws)

    as_json = client.get(DOWNLOAD, {"format": "json"})
    assert as_json.status_code == 200
    assert "attachment" in as_json["Content-Disposition"]
    record = json.loads(as_json.content)
    assert record["controller"]["slug"] == ws.slug
    assert "instagram" in record["channels"]
    kinds = {r["kind"]: r for r in record["retention"]}
    assert kinds[rules.CONSENT_EVIDENCE]["minimum_days"] == 1826
    assert {"purposes", "data_categories", "processors", "transfers"} <= set(record)

    as_csv = client.get(DOWNLOAD, {"format": "csv"})
    rows = list(csv.reader(io.StringIO(as_csv.content.decode())))
    assert rows[0] == ["section", "item", "detail"]
    assert any(row[0] == "retention" for row in rows)

    assert client.get(DOWNLOAD, {"format": "xml"}).status_code == 400
    assert AuditEvent.objects.filter(workspace=ws, action="records.download").count() == 2


def test_the_records_speak_italian_to_an_italian_admin() -> None:
    ws = make_workspace()
    client = logged_in(make_member(workspace=ws, role=Role.PRIVACY), ws)
    html = client.get(RECORDS, HTTP_ACCEPT_LANGUAGE="it").content.decode()
    assert "Registro dei trattamenti" in html


@pytest.mark.parametrize("value", ["abc", "-5", "0", "1e9", "99999999999999999999", "31.5"])
def test_garbage_periods_are_refused_on_the_page_without_an_error_page(value: str) -> None:
    ws = make_workspace()
    client = logged_in(make_member(workspace=ws, role=Role.OWNER), ws)
    response = client.post(RETENTION, {rules.DELIVERIES: value})
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert not RetentionPolicy.objects.filter(workspace=ws).exists()


def test_another_workspaces_period_is_neither_shown_nor_changed() -> None:
    mine, theirs = make_workspace(), make_workspace()
    RetentionPolicy.objects.create(workspace=theirs, kind=rules.DELIVERIES, days=77)
    client = logged_in(make_member(workspace=mine, role=Role.PRIVACY), mine)
    assert 'value="77"' not in client.get(RETENTION).content.decode()
    client.post(RETENTION, {rules.DELIVERIES: "50"})
    assert RetentionPolicy.objects.get(workspace=theirs).days == 77
    assert RetentionPolicy.objects.get(workspace=mine).days == 50
