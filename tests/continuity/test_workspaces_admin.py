"""The tenancy admin: the switcher, members, workspaces' settings, API keys and the audit trail."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from continuity.admin_access import SESSION_KEY
from continuity.audit import audit_record
from continuity.models import ApiKey, AuditEvent, AuditOutcome, Membership, Role, Workspace
from continuity.workspaces import command_access
from tests.workspaces import bearer, make_api_key, make_member, make_workspace

pytestmark = pytest.mark.django_db
User = get_user_model()

MEMBERS = "/admin/continuity/membership/"
KEYS = "/admin/continuity/apikey/"
AUDIT = "/admin/continuity/auditevent/"
WORKSPACES = "/admin/continuity/workspace/"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"])


# --- the switcher ---------------------------------------------------------------------------------


def test_the_switcher_refuses_a_workspace_the_user_is_not_in_with_404() -> None:
    mine, theirs = make_workspace(name="A mine"), make_workspace(name="B theirs")
    client = signed_in(make_member(workspace=mine))

    response = client.post("/admin/workspace/switch/", {"workspace": theirs.pk})

    assert response.status_code == 404
    assert client.session.get(SESSION_KEY) is None
    assert client.post("/admin/workspace/switch/", {"workspace": "nope"}).status_code == 404


def test_the_switcher_switches_to_a_workspace_the_user_is_in() -> None:
    first, second = make_workspace(name="A first"), make_workspace(name="B second")
    user = make_member(workspace=first, role=Role.OWNER)
    Membership.objects.create(user=user, workspace=second, role=Role.VIEWER)
    make_member(workspace=second, username="only-in-second")
    client = signed_in(user)
    assert "only-in-second" not in client.get(MEMBERS).content.decode()

    response = client.post(
        "/admin/workspace/switch/", {"workspace": second.pk, "next": "https://evil.example/"}
    )

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.session[SESSION_KEY] == second.pk
    page = client.get(MEMBERS).content.decode()
    assert "only-in-second" in page
    # A viewer there: the list is read-only.
    assert f"{MEMBERS}add/" not in page


def test_the_switcher_lists_only_the_users_workspaces() -> None:
    mine, theirs = make_workspace(name="Mine"), make_workspace(name="Someone else's")
    page = signed_in(make_member(workspace=mine)).get("/admin/").content.decode()
    assert 'id="workspace-switcher"' in page
    assert "Mine" in page and theirs.name not in page


# --- members --------------------------------------------------------------------------------------


def test_an_owner_adds_a_new_member_by_username_and_it_is_audited() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)

    response = signed_in(owner).post(
        f"{MEMBERS}add/", {"username": "giulia", "role": "marketer"}, follow=True
    )

    assert response.status_code == 200
    giulia = User.objects.get(username="giulia")
    assert giulia.is_staff and not giulia.has_usable_password()
    assert Membership.objects.get(user=giulia).workspace == workspace
    event = AuditEvent.objects.get(action="membership.add")
    assert (event.actor, event.workspace, event.outcome) == (owner, workspace, AuditOutcome.DONE)


def test_an_owner_cannot_add_someone_who_is_a_member_already() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    member = make_member(workspace=workspace, role=Role.VIEWER)
    response = signed_in(owner).post(
        f"{MEMBERS}add/", {"username": member.username, "role": "owner"}
    )
    assert response.status_code == 200
    assert "member already" in response.content.decode()
    assert Membership.objects.get(user=member).role == Role.VIEWER


def test_an_owner_changes_a_role_and_removes_a_member_whose_keys_die_with_it() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    member = make_member(workspace=workspace, role=Role.VIEWER)
    membership = Membership.objects.get(user=member)
    key = make_api_key(user=member, workspace=workspace)
    client = signed_in(owner)

    client.post(f"{MEMBERS}{membership.pk}/change/", {"role": "privacy"})
    membership.refresh_from_db()
    assert membership.role == Role.PRIVACY
    client.post(f"{MEMBERS}{membership.pk}/delete/", {"post": "yes"})

    assert not Membership.objects.filter(user=member).exists()
    assert ApiKey.objects.get(user=member).revoked
    assert Client().get("/api/v1/me/", **bearer(key)).status_code == 401
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "outcome"))
    assert actions == [("membership.change", "done"), ("membership.remove", "done")]


def test_the_last_owner_can_be_neither_demoted_nor_removed_in_the_admin() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    membership = Membership.objects.get(user=owner)
    client = signed_in(owner)

    demote = client.post(f"{MEMBERS}{membership.pk}/change/", {"role": "viewer"})
    remove = client.post(f"{MEMBERS}{membership.pk}/delete/", {"post": "yes"}, follow=True)

    assert "at least one owner" in demote.content.decode()
    assert "at least one owner" in _messages(remove)
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_membership_admin_by_a_marketer_is_refused_and_audited_and_changes_nothing() -> None:
    workspace = make_workspace()
    marketer = make_member(workspace=workspace, role=Role.MARKETER)
    viewer = make_member(workspace=workspace, role=Role.VIEWER)
    target = Membership.objects.get(user=viewer)
    client = signed_in(marketer)

    assert client.get(MEMBERS).status_code == 200  # marketers may see who is in the team
    responses = [
        client.get(f"{MEMBERS}add/"),
        client.post(f"{MEMBERS}add/", {"username": "intruder", "role": "owner"}),
        client.post(f"{MEMBERS}{target.pk}/change/", {"role": "owner"}),
        client.post(f"{MEMBERS}{target.pk}/delete/", {"post": "yes"}),
        client.post(MEMBERS, {"action": "delete_selected", "_selected_action": [target.pk]}),
    ]

    assert [r.status_code for r in responses] == [403] * 5
    assert "continuity.manage_members" in responses[1].content.decode()
    assert not User.objects.filter(username="intruder").exists()
    target.refresh_from_db()
    assert target.role == Role.VIEWER
    denied = AuditEvent.objects.filter(outcome=AuditOutcome.DENIED).order_by("id")
    assert [(e.action, e.actor, e.workspace) for e in denied] == [
        ("membership.add", marketer, workspace),
        ("membership.add", marketer, workspace),
        ("membership.change", marketer, workspace),
        ("membership.remove", marketer, workspace),
        ("membership.remove", marketer, workspace),
    ]
    assert denied[2].target_id == str(target.pk)
    assert all(e.detail == {"missing": "continuity.manage_members"} for e in denied)
    assert not AuditEvent.objects.filter(outcome=AuditOutcome.DONE).exists()


def test_an_owner_never_reaches_another_workspaces_members() -> None:
    mine, theirs = make_workspace(), make_workspace()
    owner = make_member(workspace=mine, role=Role.OWNER)
    stranger = make_member(workspace=theirs, role=Role.VIEWER, username="stranger")
    foreign = Membership.objects.get(user=stranger)
    client = signed_in(owner)

    assert "stranger" not in client.get(MEMBERS).content.decode()
    change = client.post(f"{MEMBERS}{foreign.pk}/change/", {"role": "owner"})
    delete = client.post(f"{MEMBERS}{foreign.pk}/delete/", {"post": "yes"})

    # The admin's "does not exist" answer (a redirect), never the row.
    assert change.status_code == 302 and delete.status_code == 302
    foreign.refresh_from_db()
    assert foreign.role == Role.VIEWER


# --- workspaces -----------------------------------------------------------------------------------


def test_only_a_superuser_creates_a_workspace() -> None:
    owner = make_member(workspace=make_workspace(), role=Role.OWNER)
    form = {"slug": "new", "name": "New client", "quiet_hours_sms": "", "timezone": ""}
    assert signed_in(owner).post(f"{WORKSPACES}add/", form).status_code == 403
    assert not Workspace.objects.filter(slug="new").exists()

    root = User.objects.create_superuser("root", "", "pw")
    signed_in(root).post(f"{WORKSPACES}add/", {**form, "language": ""})
    created = Workspace.objects.get(slug="new")
    assert AuditEvent.objects.get(action="workspace.create").workspace == created


def test_an_owner_changes_their_workspaces_settings_and_a_marketer_may_not() -> None:
    workspace = make_workspace(slug="mine", name="Mine")
    owner = make_member(workspace=workspace, role=Role.OWNER)
    marketer = make_member(workspace=workspace, role=Role.MARKETER)
    url = f"{WORKSPACES}{workspace.pk}/change/"
    form = {
        "name": "Mine, renamed",
        "sms_budget_segments": "500",
        "frequency_cap_per_day": "2",
        "quiet_hours_sms": "21:00-08:00",
        "timezone": "Europe/Rome",
        "language": "en",
        # Not a field for owners: the slug stays.
        "slug": "hijacked",
    }

    assert signed_in(marketer).post(url, form).status_code == 403
    response = signed_in(owner).post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    workspace.refresh_from_db()
    assert (workspace.slug, workspace.name, workspace.sms_budget_segments) == (
        "mine",
        "Mine, renamed",
        500,
    )
    event = AuditEvent.objects.get(action="workspace.change")
    assert "sms_budget_segments" in event.detail["fields"] and event.actor == owner


def test_bad_workspace_settings_are_refused_in_words() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    response = signed_in(owner).post(
        f"{WORKSPACES}{workspace.pk}/change/",
        {"name": "X", "quiet_hours_sms": "late", "timezone": "Mars/Olympus", "language": "xx"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "HH:MM-HH:MM" in body and "Mars/Olympus" in body and "xx is not one" in body


def test_a_member_sees_only_their_workspaces() -> None:
    mine, theirs = make_workspace(name="Mine"), make_workspace(name="Theirs")
    page = signed_in(make_member(workspace=mine)).get(WORKSPACES).content.decode()
    assert f"{WORKSPACES}{mine.pk}/change/" in page
    assert f"{WORKSPACES}{theirs.pk}/change/" not in page


# --- API keys -------------------------------------------------------------------------------------


def test_a_key_made_in_the_admin_is_shown_once_and_works() -> None:
    workspace = make_workspace(slug="shop")
    user = make_member(workspace=workspace, role=Role.MARKETER)
    client = signed_in(user)

    response = client.post(
        f"{KEYS}add/", {"name": "crm", "workspace": workspace.pk, "expiry_date": ""}, follow=True
    )

    key = re.search(r"<code>([^<]+)</code>", _messages(response)).group(1)  # type: ignore[union-attr]
    row = ApiKey.objects.get()
    assert (row.user, row.workspace, row.name) == (user, workspace, "crm")
    assert key not in row.hashed_key
    assert key not in client.get(f"{KEYS}{row.pk}/change/").content.decode()
    assert key not in client.get(KEYS).content.decode()
    assert Client().get("/api/v1/me/", **bearer(key)).json()["workspace"] == "shop"
    assert AuditEvent.objects.get(action="api_key.create").target_id == row.prefix


def test_a_key_for_a_workspace_the_user_is_not_in_cannot_be_made() -> None:
    mine, theirs = make_workspace(), make_workspace()
    client = signed_in(make_member(workspace=mine))
    response = client.post(f"{KEYS}add/", {"name": "x", "workspace": theirs.pk})
    assert response.status_code == 200  # the form, with the choice refused
    no_workspace = client.post(f"{KEYS}add/", {"name": "x", "workspace": ""})
    assert no_workspace.status_code == 200
    assert not ApiKey.objects.exists()


def test_users_see_their_own_keys_and_owners_the_workspaces_and_owners_revoke_them() -> None:
    workspace, other = make_workspace(), make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    marketer = make_member(workspace=workspace, role=Role.MARKETER)
    make_api_key(user=owner, workspace=workspace, name="owner-key")
    marketer_key = make_api_key(user=marketer, workspace=workspace, name="marketer-key")
    make_api_key(user=make_member(workspace=other), workspace=other, name="elsewhere-key")

    marketer_page = signed_in(marketer).get(KEYS).content.decode()
    owner_client = signed_in(owner)
    owner_page = owner_client.get(KEYS).content.decode()

    assert "marketer-key" in marketer_page and "owner-key" not in marketer_page
    assert "marketer-key" in owner_page and "owner-key" in owner_page
    assert "elsewhere-key" not in owner_page
    row = ApiKey.objects.get(name="marketer-key")
    owner_client.post(KEYS, {"action": "revoke_keys", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked
    assert Client().get("/api/v1/me/", **bearer(marketer_key)).status_code == 401
    event = AuditEvent.objects.get(action="api_key.revoke")
    assert (event.actor, event.target_id) == (owner, row.prefix)


def test_a_user_revokes_their_own_key_on_its_page_and_a_marketer_not_the_owners() -> None:
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    marketer = make_member(workspace=workspace, role=Role.MARKETER)
    make_api_key(user=owner, workspace=workspace, name="owner-key")
    make_api_key(user=marketer, workspace=workspace, name="mine")
    owners, mine = ApiKey.objects.get(name="owner-key"), ApiKey.objects.get(name="mine")
    client = signed_in(marketer)

    client.post(KEYS, {"action": "revoke_keys", "_selected_action": [owners.pk]})
    client.post(f"{KEYS}{mine.pk}/change/", {"name": "mine", "revoked": "on"})

    owners.refresh_from_db()
    mine.refresh_from_db()
    assert not owners.revoked and mine.revoked
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1


def test_an_operator_may_make_an_install_wide_key() -> None:
    call_command("operator_add", "oscar", stdout=io.StringIO())
    client = signed_in(User.objects.get(username="oscar"))
    client.post(f"{KEYS}add/", {"name": "ops", "workspace": ""})
    row = ApiKey.objects.get()
    assert row.workspace is None
    assert AuditEvent.objects.get(action="api_key.create").workspace is None


# --- the audit trail ------------------------------------------------------------------------------


def _event(workspace: Workspace | None, action: str, **detail: Any) -> AuditEvent:
    return audit_record(access=command_access(workspace=workspace), action=action, detail=detail)


def test_the_audit_trail_is_read_only_even_for_superusers() -> None:
    event = _event(make_workspace(), "thing.done")
    client = signed_in(User.objects.create_superuser("root", "", "pw"))

    assert client.get(AUDIT).status_code == 200
    assert client.get(f"{AUDIT}add/").status_code == 403
    client.post(f"{AUDIT}{event.pk}/change/", {"action": "forged"})
    delete = client.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    client.post(AUDIT, {"action": "delete_selected", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.action == "thing.done"


def test_owners_and_privacy_officers_see_their_workspaces_rows_operators_the_install_rows() -> None:
    mine, theirs = make_workspace(), make_workspace()
    _event(mine, "mine.happened")
    _event(theirs, "theirs.happened")
    _event(None, "install.happened")
    owner = make_member(workspace=mine, role=Role.OWNER)
    privacy = make_member(workspace=mine, role=Role.PRIVACY)
    marketer = make_member(workspace=mine, role=Role.MARKETER)
    call_command("operator_add", "oscar", stdout=io.StringIO())

    for user in (owner, privacy):
        page = signed_in(user).get(AUDIT).content.decode()
        assert "mine.happened" in page
        assert "theirs.happened" not in page and "install.happened" not in page
    operator_page = signed_in(User.objects.get(username="oscar")).get(AUDIT).content.decode()
    assert "install.happened" in operator_page and "mine.happened" not in operator_page
    assert signed_in(marketer).get(AUDIT).status_code == 403
    assert signed_in(marketer).get(f"{AUDIT}export/").status_code == 403


def test_the_audit_csv_export_is_formula_safe_scoped_and_itself_audited() -> None:
    mine, theirs = make_workspace(slug="mine"), make_workspace(slug="theirs")
    _event(mine, "member.renamed", name='=HYPERLINK("http://evil.example","x")')
    _event(theirs, "theirs.happened")
    owner = make_member(workspace=mine, role=Role.OWNER)

    response = signed_in(owner).get(f"{AUDIT}export/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:4] == ["at", "workspace", "actor", "action"]
    assert [r[3] for r in rows[1:]] == ["member.renamed"]
    assert not any(cell.startswith("=") for row in rows for cell in row)
    export = AuditEvent.objects.get(action="audit.export")
    assert (export.actor, export.workspace, export.detail) == (owner, mine, {"rows": 1})


def test_the_audit_export_action_exports_the_selected_rows() -> None:
    workspace = make_workspace()
    first = _event(workspace, "first.thing")
    _event(workspace, "second.thing")
    owner = make_member(workspace=workspace, role=Role.OWNER)
    response = signed_in(owner).post(
        AUDIT, {"action": "export_csv", "_selected_action": [first.pk]}
    )
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert "first.thing" in body and "second.thing" not in body


def test_the_librarys_own_unused_api_key_model_has_no_admin_page() -> None:
    root = signed_in(User.objects.create_superuser("root", "", "pw"))
    assert root.get("/admin/rest_framework_api_key/apikey/").status_code == 404
    assert root.get(KEYS).status_code == 200


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.OWNER, {"members_add": 200, "key_add": 200, "audit": 200, "workspace": 200}),
        (Role.PRIVACY, {"members_add": 403, "key_add": 200, "audit": 200, "workspace": 200}),
        (Role.MARKETER, {"members_add": 403, "key_add": 200, "audit": 403, "workspace": 200}),
        (Role.VIEWER, {"members_add": 403, "key_add": 200, "audit": 403, "workspace": 200}),
    ],
)
def test_the_tenancy_pages_render_for_each_role_as_declared(
    role: str, expected: dict[str, int]
) -> None:
    workspace = make_workspace()
    user = make_member(workspace=workspace, role=role)
    make_api_key(user=user, workspace=workspace)
    client = signed_in(user)
    _event(workspace, "something.happened")

    assert client.get("/admin/").status_code == 200
    seen = {
        "members_add": client.get(f"{MEMBERS}add/").status_code,
        "key_add": client.get(f"{KEYS}add/").status_code,
        "audit": client.get(AUDIT).status_code,
        "workspace": client.get(f"{WORKSPACES}{workspace.pk}/change/").status_code,
    }
    assert seen == expected
    assert client.get(MEMBERS).status_code == 200
    assert client.get(KEYS).status_code == 200
    key = ApiKey.objects.get(user=user)
    assert client.get(f"{KEYS}{key.pk}/change/").status_code == 200
    membership = Membership.objects.get(user=user)
    assert client.get(f"{MEMBERS}{membership.pk}/change/").status_code == 200


def test_the_tenancy_pages_render_for_a_superuser_and_an_operator() -> None:
    workspace = make_workspace()
    _event(workspace, "something.happened")
    _event(None, "install.happened")
    root = signed_in(User.objects.create_superuser("root", "", "pw"))
    for url in (f"{WORKSPACES}add/", WORKSPACES, f"{AUDIT}?workspace__id__exact={workspace.pk}"):
        assert root.get(url).status_code == 200, url
    assert "something.happened" in root.get(AUDIT).content.decode()

    call_command("operator_add", "oscar", stdout=io.StringIO())
    operator = signed_in(User.objects.get(username="oscar"))
    assert operator.get("/admin/").status_code == 200
    assert operator.get(WORKSPACES).status_code == 200  # every workspace's name and settings
    assert operator.get(f"{WORKSPACES}{workspace.pk}/change/").status_code == 200
    assert operator.post(f"{WORKSPACES}{workspace.pk}/change/", {"name": "x"}).status_code == 403
    assert operator.get(f"{KEYS}add/").status_code == 200
    assert operator.get(f"{MEMBERS}").status_code == 403  # no workspace of their own
