"""The operators' commands: workspace_create, workspace_member_add, operator_add and
api_token_create."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from continuity.models import ApiKey, AuditEvent, Membership, Role, Workspace
from continuity.roles import OPERATOR_GROUP, user_is_operator
from tests.workspaces import bearer, make_member, make_workspace

pytestmark = pytest.mark.django_db
User = get_user_model()


def run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_workspace_create_makes_an_empty_workspace_and_audits_it() -> None:
    out = run("workspace_create", "trattoria", "Trattoria Roma")

    workspace = Workspace.objects.get(slug="trattoria")
    assert workspace.name == "Trattoria Roma"
    assert "trattoria" in out
    event = AuditEvent.objects.get(action="workspace.create")
    assert (event.workspace, event.actor, event.actor_label) == (workspace, None, "manage.py")


@pytest.mark.parametrize(
    ("slug", "name", "message"),
    [
        ("not a slug", "Name", "not a slug"),
        ("x" * 51, "Name", "longer than 50"),
        ("fine", "   ", "1 to 200"),
    ],
)
def test_workspace_create_refuses_bad_input_in_words(slug: str, name: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("workspace_create", slug, name)
    assert not Workspace.objects.filter(name=name).exists()


def test_workspace_create_refuses_a_slug_in_use_and_changes_nothing() -> None:
    make_workspace(slug="taken", name="First")
    with pytest.raises(CommandError, match="exists already"):
        run("workspace_create", "taken", "Second")
    assert Workspace.objects.get(slug="taken").name == "First"


def test_workspace_member_add_creates_a_staff_user_without_a_usable_password() -> None:
    workspace = make_workspace(slug="boutique")

    out = run("workspace_member_add", "boutique", "giulia", role="marketer")

    user = User.objects.get(username="giulia")
    assert user.is_staff and not user.has_usable_password()
    assert Membership.objects.get(user=user).role == Role.MARKETER
    assert "changepassword giulia" in out
    event = AuditEvent.objects.get(action="membership.add")
    assert event.workspace == workspace
    assert event.detail["role"] == "marketer" and event.detail["username"] == "giulia"


def test_workspace_member_add_changes_an_existing_members_role_and_audits_it() -> None:
    workspace = make_workspace(slug="boutique")
    user = make_member(workspace=workspace, role=Role.VIEWER)

    out = run("workspace_member_add", "boutique", user.username, role="privacy")

    assert Membership.objects.get(user=user).role == Role.PRIVACY
    assert "now privacy" in out
    event = AuditEvent.objects.get(action="membership.change")
    assert event.detail["previous_role"] == "viewer" and event.detail["role"] == "privacy"
    # Same role again: nothing to record.
    assert "already" in run("workspace_member_add", "boutique", user.username, role="privacy")
    assert AuditEvent.objects.filter(action__startswith="membership.").count() == 1


def test_workspace_member_add_keeps_at_least_one_owner() -> None:
    workspace = make_workspace(slug="solo")
    owner = make_member(workspace=workspace, role=Role.OWNER)
    with pytest.raises(CommandError, match="at least one owner"):
        run("workspace_member_add", "solo", owner.username, role="viewer")
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_workspace_member_add_refuses_an_unknown_workspace_or_role() -> None:
    with pytest.raises(CommandError, match="No workspace"):
        run("workspace_member_add", "nowhere", "giulia", role="owner")
    make_workspace(slug="here")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("workspace_member_add", "here", "giulia", "--role", "king")
    with pytest.raises(CommandError):
        run("workspace_member_add", "here", "bad name!", role="owner")
    assert not User.objects.filter(username__in=["giulia", "bad name!"]).exists()


def test_operator_add_puts_a_new_or_existing_user_in_the_operator_group() -> None:
    out = run("operator_add", "oscar")
    oscar = User.objects.get(username="oscar")
    assert user_is_operator(oscar) and oscar.is_staff and not oscar.has_usable_password()
    assert oscar.groups.filter(name=OPERATOR_GROUP).exists()
    assert oscar.has_perm("outages.add_outagewindow")
    assert "now an operator" in out
    assert "already" in run("operator_add", "oscar")

    plain = User.objects.create_user("plain", is_staff=False)
    run("operator_add", "plain")
    plain.refresh_from_db()
    assert plain.is_staff and user_is_operator(plain)
    events = AuditEvent.objects.filter(action="operator.add")
    assert events.count() == 2 and not events.filter(workspace__isnull=False).exists()


def test_api_token_create_prints_only_a_key_that_works(client: Client) -> None:
    workspace = make_workspace(slug="shop")
    user = make_member(workspace=workspace, role=Role.MARKETER, username="integrator")

    out = run("api_token_create", "integrator", workspace="shop", expires_days="30")

    key = out.strip()
    assert out == key + "\n" and "." in key
    row = ApiKey.objects.get(user=user)
    assert row.workspace == workspace and key not in row.hashed_key and key not in row.pk
    assert row.expiry_date is not None
    assert timedelta(days=29) < row.expiry_date - timezone.now() <= timedelta(days=30)
    me = client.get("/api/v1/me/", **bearer(key))
    assert me.status_code == 200
    assert (me.json()["workspace"], me.json()["role"]) == ("shop", "marketer")
    event = AuditEvent.objects.get(action="api_key.create")
    assert event.target_id == row.prefix and event.workspace == workspace


def test_api_token_create_takes_a_name() -> None:
    workspace = make_workspace(slug="shop")
    make_member(workspace=workspace, username="integrator")
    run("api_token_create", "integrator", workspace="shop", name="crm sync")
    assert ApiKey.objects.get().name == "crm sync"


def test_an_install_wide_key_is_for_operators_only() -> None:
    make_member(workspace=make_workspace(), username="marketer")
    with pytest.raises(CommandError, match="Only operators"):
        run("api_token_create", "marketer")
    run("operator_add", "oscar")
    key = run("api_token_create", "oscar").strip()
    assert ApiKey.objects.get(user__username="oscar").workspace is None
    assert key


@pytest.mark.parametrize(
    ("username", "options", "message"),
    [
        ("ghost", {"workspace": "shop"}, "No user is named 'ghost'"),
        ("member", {"workspace": "nowhere"}, "No workspace has the slug 'nowhere'"),
        ("outsider", {"workspace": "shop"}, "not a member of this workspace"),
        ("gone", {"workspace": "shop"}, "inactive"),
        ("member", {"workspace": "shop", "expires_days": "0"}, "--expires-days"),
        ("member", {"workspace": "shop", "expires_days": "-3"}, "--expires-days"),
        ("member", {"workspace": "shop", "expires_days": "soon"}, "--expires-days"),
        ("member", {"workspace": "shop", "expires_days": "99999"}, "--expires-days"),
    ],
)
def test_api_token_create_refuses_bad_input_and_creates_no_key(
    username: str, options: dict[str, str], message: str
) -> None:
    shop = make_workspace(slug="shop")
    make_member(workspace=shop, username="member")
    make_member(workspace=make_workspace(), username="outsider")
    make_member(workspace=shop, username="gone", is_active=False)
    out = io.StringIO()
    with pytest.raises(CommandError, match=message):
        call_command("api_token_create", username, stdout=out, **options)
    assert out.getvalue() == ""
    assert not ApiKey.objects.exists()
