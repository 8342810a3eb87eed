"""The owners' credentials page: secrets are write-only, changes and refusals are audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from continuity.models import AuditEvent, AuditOutcome, Role
from delivery.models import WorkspaceCredentials
from delivery.secrets import token_decrypt
from tests.delivery.test_credentials import KEY_A, KEY_B, SID_A, TOKEN_A, credentials_set
from tests.workspaces import make_member, make_workspace

pytestmark = [pytest.mark.django_db]

URL = "/admin/delivery/workspacecredentials/"


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(**values: str) -> dict[str, str]:
    """A full submission of the page, as the browser sends it (every plain field present)."""
    data = {
        "sendgrid_from_email": "",
        "sendgrid_from_name": "",
        "sendgrid_webhook_verification_key": "",
        "twilio_account_sid": "",
        "twilio_messaging_service_sid": "",
        "twilio_from_number": "",
        "vapid_public_key": "",
        "vapid_subject": "",
        "whatsapp_phone_number_id": "",
    }
    data.update(values)
    return data


def test_the_page_is_the_models_admin_url() -> None:
    assert reverse("admin:delivery_workspacecredentials_changelist") == URL


def test_an_owner_sets_secrets_that_the_page_never_shows_again() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    client = logged_in(owner)
    assert "not set" in client.get(URL).content.decode()

    response = client.post(
        URL,
        form(
            sendgrid_from_email="news@a.example",
            new_sendgrid_api_key=KEY_A,
            twilio_account_sid=SID_A,
            new_twilio_auth_token=TOKEN_A,
            twilio_from_number="+15005550100",
        ),
    )

    assert response.status_code == 302
    row = WorkspaceCredentials.objects.get(workspace=workspace)
    assert token_decrypt(ciphertext=row.sendgrid_api_key_encrypted) == KEY_A
    page = client.get(URL).content.decode()
    for secret in (KEY_A, TOKEN_A, row.sendgrid_api_key_encrypted, row.twilio_auth_token_encrypted):
        assert secret not in page
    assert f"set …{KEY_A[-4:]}" in page
    assert f"set …{TOKEN_A[-4:]}" in page
    assert KEY_A[-5:] not in page, "at most the last 4 characters"


def test_a_change_is_audited_with_the_fields_that_changed_and_never_their_values() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    client = logged_in(owner)

    client.post(URL, form(sendgrid_from_email="news@a.example", new_sendgrid_api_key=KEY_A))
    client.post(URL, form(sendgrid_from_email="news@a.example"))  # nothing changed
    client.post(URL, form(sendgrid_from_email="hello@a.example", new_sendgrid_api_key=KEY_B))

    events = list(
        AuditEvent.objects.filter(workspace=workspace, action="credentials.change").order_by("id")
    )
    assert [(e.outcome, e.detail) for e in events] == [
        (AuditOutcome.DONE, {"fields": ["sendgrid_api_key", "sendgrid_from_email"]}),
        (AuditOutcome.DONE, {"fields": ["sendgrid_api_key", "sendgrid_from_email"]}),
    ]
    assert events[0].actor == owner
    dumped = json.dumps([e.detail for e in events])
    assert KEY_A not in dumped and KEY_B not in dumped and "hello@a.example" not in dumped


def test_removing_a_secret_is_a_change_and_falls_back_to_the_install() -> None:
    workspace = make_workspace()
    credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example")
    client = logged_in(make_member(workspace=workspace, role=Role.OWNER))

    client.post(URL, form(clear_sendgrid_api_key="on"))

    row = WorkspaceCredentials.objects.get(workspace=workspace)
    assert row.sendgrid_api_key_encrypted == "" and "sendgrid_api_key" not in row.hints
    event = AuditEvent.objects.filter(action="credentials.change").latest("id")
    assert event.detail == {"fields": ["sendgrid_api_key", "sendgrid_from_email"]}


@pytest.mark.parametrize("role", [Role.MARKETER, Role.VIEWER, Role.PRIVACY])
def test_a_member_who_is_not_an_owner_cannot_read_or_change_credentials(role: str) -> None:
    workspace = make_workspace()
    credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example")
    before = WorkspaceCredentials.objects.get(workspace=workspace)
    member = make_member(workspace=workspace, role=role)
    client = logged_in(member)

    read = client.get(URL)
    change = client.post(URL, form(new_sendgrid_api_key=KEY_B, sendgrid_from_email="x@x.example"))

    assert (read.status_code, change.status_code) == (403, 403)
    assert KEY_A[-4:] not in read.content.decode()
    after = WorkspaceCredentials.objects.get(workspace=workspace)
    assert after.sendgrid_api_key_encrypted == before.sendgrid_api_key_encrypted
    assert after.sendgrid_from_email == "news@a.example"
    denied = AuditEvent.objects.filter(
        workspace=workspace, actor=member, outcome=AuditOutcome.DENIED
    ).order_by("id")
    assert [(e.action, e.detail) for e in denied] == [
        ("credentials.view", {"missing": "continuity.manage_credentials"}),
        ("credentials.change", {"missing": "continuity.manage_credentials"}),
    ]


def test_the_admin_index_offers_the_page_to_owners_only() -> None:
    workspace = make_workspace()
    owner = logged_in(make_member(workspace=workspace, role=Role.OWNER))
    marketer = logged_in(make_member(workspace=workspace, role=Role.MARKETER))

    assert URL in owner.get("/admin/").content.decode()
    assert URL not in marketer.get("/admin/").content.decode()


def test_an_owner_sees_and_changes_only_the_workspace_they_act_in() -> None:
    mine, theirs = make_workspace(), make_workspace()
    credentials_set(theirs, sendgrid_api_key=KEY_B, sendgrid_from_email="other@b.example")
    client = logged_in(make_member(workspace=mine, role=Role.OWNER))

    page = client.get(URL).content.decode()
    client.post(URL, form(sendgrid_from_email="news@a.example", new_sendgrid_api_key=KEY_A))

    assert "other@b.example" not in page and KEY_B[-4:] not in page
    other = WorkspaceCredentials.objects.get(workspace=theirs)
    assert token_decrypt(ciphertext=other.sendgrid_api_key_encrypted) == KEY_B
    assert WorkspaceCredentials.objects.get(workspace=mine).sendgrid_from_email == "news@a.example"
    # Switching to a workspace the owner is not a member of is "not found".
    assert client.post("/admin/workspace/switch/", {"workspace": theirs.pk}).status_code == 404


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"twilio_account_sid": "nope", "new_twilio_auth_token": "t" * 32}, "AC and 32 hex"),
        ({"twilio_account_sid": SID_A}, "both its SID and its auth token"),
        (
            {"twilio_account_sid": SID_A, "new_twilio_auth_token": TOKEN_A},
            "messaging service SID or a from number",
        ),
        ({"new_sendgrid_api_key": KEY_A}, "sender email verified"),
        ({"new_vapid_private_key": "not a key"}, "not a VAPID private key"),
        ({"sendgrid_webhook_verification_key": "bm90IGEga2V5"}, "EC public key"),
        ({"new_whatsapp_access_token": "x\x07y", "whatsapp_phone_number_id": "1"}, "Control"),
    ],
)
def test_bad_input_is_answered_with_the_reason_and_changes_nothing(
    values: dict[str, str], error: str
) -> None:
    workspace = make_workspace()
    client = logged_in(make_member(workspace=workspace, role=Role.OWNER))

    response = client.post(URL, form(**values))

    assert response.status_code == 200
    page = response.content.decode()
    assert error in page
    for name, value in values.items():
        if name.startswith("new_"):
            assert value not in page, "a typed secret is never rendered back"
    assert not WorkspaceCredentials.objects.filter(workspace=workspace).exists()
    assert not AuditEvent.objects.filter(workspace=workspace).exists()


def test_a_vapid_private_key_alone_gets_its_public_key_derived() -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("vapid_keys", stdout=out)
    lines = dict(line.split("=", 1) for line in out.getvalue().splitlines() if "=" in line)
    workspace = make_workspace()
    client = logged_in(make_member(workspace=workspace, role=Role.OWNER))

    client.post(URL, form(new_vapid_private_key=lines["VAPID_PRIVATE_KEY"]))

    row = WorkspaceCredentials.objects.get(workspace=workspace)
    assert row.vapid_public_key == lines["VAPID_PUBLIC_KEY"]
    assert token_decrypt(ciphertext=row.vapid_private_key_encrypted) == lines["VAPID_PRIVATE_KEY"]
    assert lines["VAPID_PRIVATE_KEY"] not in client.get(URL).content.decode()
