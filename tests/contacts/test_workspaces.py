"""Contacts across workspaces: the same person may belong to two client businesses, every API
read and write stays inside the key's workspace (another's row is a 404 and nothing changes),
each role gets exactly its rights (a 403 names the missing one), and exports and erasures leave
an audit row, refusals included."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from contacts import links
from contacts.consent import ConsentChange, consents_apply_bulk
from contacts.models import (
    Channel,
    Consent,
    ConsentEvent,
    ConsentState,
    Contact,
    ContactTag,
    Purpose,
    PushSubscription,
    Segment,
    Tag,
)
from contacts.selectors import contact_find, segment_contacts
from contacts.upsert import contacts_upsert_rows
from continuity.models import ApiKey, AuditEvent, AuditOutcome, Role, Workspace
from continuity.roles import ROLE_PERMISSIONS
from tests.contacts.factories import evidence, granted_contact, make_contact
from tests.contacts.test_views import _path, _subscription
from tests.harness import redis_keys_delete
from tests.workspaces import bearer, make_api_key, make_member, make_workspace

pytestmark = pytest.mark.django_db


def _api(workspace: Workspace, role: str = Role.OWNER) -> Client:
    client = Client(raise_request_exception=False)
    user = make_member(workspace=workspace, role=role)
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def _state() -> dict[str, Any]:
    """Everything a contacts request could change, to prove a refused one changed nothing."""
    return {
        "contacts": sorted(
            Contact.objects.values_list(
                "pk", "workspace_id", "email", "first_name", "erased_at", "sendable"
            )
        ),
        "consents": sorted(Consent.objects.values_list("contact_id", "channel", "state")),
        "events": ConsentEvent.objects.count(),
        "tags": sorted(ContactTag.objects.values_list("contact_id", "tag_id")),
        "segments": sorted(Segment.objects.values_list("pk", "workspace_id", "name", "tags_any")),
    }


# --- the same person in two workspaces --------------------------------------------------------


def test_two_workspaces_may_each_hold_a_contact_with_the_same_email_and_phone() -> None:
    shop, bakery = make_workspace(), make_workspace()
    row = {"email": "same@example.com", "phone": "+33612345678", "external_id": "C-1"}
    first = contacts_upsert_rows(workspace=shop, raws=[row], blank_means_unchanged=False)
    second = contacts_upsert_rows(workspace=bakery, raws=[row], blank_means_unchanged=False)
    assert [r.status for r in first.results + second.results] == ["created", "created"]
    assert first.results[0].id != second.results[0].id
    assert set(Contact.objects.values_list("workspace_id", flat=True)) == {shop.pk, bakery.pk}
    # Matching stays inside the workspace: a second import into the shop updates its own row.
    again = contacts_upsert_rows(
        workspace=shop, raws=[{**row, "first_name": "Ann"}], blank_means_unchanged=False
    )
    assert (again.results[0].status, again.results[0].id) == ("updated", first.results[0].id)
    assert Contact.objects.get(pk=second.results[0].id).first_name == ""


def test_creating_through_the_api_in_another_workspace_never_touches_the_first_ones_contact() -> (
    None
):
    shop, bakery = make_workspace(), make_workspace()
    theirs = make_contact(workspace=shop, email="shared@example.com", first_name="Shop")
    response = _api(bakery).post(
        "/api/v1/contacts/",
        {"email": "shared@example.com", "first_name": "Bakery"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["id"] != theirs.pk
    theirs.refresh_from_db()
    assert theirs.first_name == "Shop"


def test_contact_find_and_tags_and_segments_resolve_inside_their_workspace() -> None:
    shop, bakery = make_workspace(), make_workspace()
    mine = make_contact(workspace=shop, email="find@example.com")
    other = make_contact(workspace=bakery, email="find@example.com")
    assert contact_find(workspace=shop, email="FIND@example.com") == mine
    assert contact_find(workspace=bakery, email="find@example.com") == other
    contacts_upsert_rows(
        workspace=bakery,
        raws=[{"email": "find@example.com", "tags": ["vip"]}],
        blank_means_unchanged=False,
    )
    assert Tag.objects.filter(name="vip").count() == 1
    segment = Segment.objects.create(workspace=shop, name="vip", tags_any=["vip"])
    assert list(segment_contacts(segment)) == []  # the bakery's "vip" is another tag
    contacts_upsert_rows(
        workspace=shop,
        raws=[{"email": "find@example.com", "tags": ["vip"]}],
        blank_means_unchanged=False,
    )
    assert list(segment_contacts(segment)) == [mine]
    assert Tag.objects.filter(name="vip").count() == 2


def test_bulk_consent_takes_each_contacts_workspace_and_refuses_a_foreign_one() -> None:
    shop, bakery = make_workspace(), make_workspace()
    a, b = make_contact(workspace=shop), make_contact(workspace=bakery)
    ev = evidence()
    changes = [
        ConsentChange(a.pk, Channel.EMAIL, Purpose.MARKETING, ConsentState.GRANTED, ev),
        ConsentChange(b.pk, Channel.EMAIL, Purpose.MARKETING, ConsentState.GRANTED, ev),
    ]
    with pytest.raises(ValueError, match="not in workspace"):
        consents_apply_bulk(workspace=shop, changes=changes)
    assert not Consent.objects.exists()
    assert consents_apply_bulk(changes=changes) == 2
    assert set(Consent.objects.values_list("contact_id", "workspace_id")) == {
        (a.pk, shop.pk),
        (b.pk, bakery.pk),
    }
    assert set(ConsentEvent.objects.values_list("contact_id", "workspace_id")) == {
        (a.pk, shop.pk),
        (b.pk, bakery.pk),
    }


# --- another workspace's rows: 404, nothing changes -------------------------------------------


def _foreign_requests(contact: Contact, segment: Segment) -> list[tuple[str, str, Any]]:
    c, s = f"/api/v1/contacts/{contact.pk}", f"/api/v1/segments/{segment.pk}"
    grant = {"channel": "email", "action": "grant", "source": "form"}
    return [
        ("get", f"{c}/", None),
        ("patch", f"{c}/", {"first_name": "Mallory"}),
        ("put", f"{c}/", {"first_name": "Mallory", "tags": []}),
        ("delete", f"{c}/", None),
        ("get", f"{c}/export/", None),
        ("post", f"{c}/consent/", grant),
        ("get", f"{c}/consent/history/", None),
        ("get", f"{s}/", None),
        ("patch", f"{s}/", {"tags_any": ["x"]}),
        ("delete", f"{s}/", None),
        ("get", f"{s}/count/", None),
    ]


def test_another_workspaces_contact_or_segment_is_404_for_every_method_and_nothing_changes() -> (
    None
):
    shop, bakery = make_workspace(), make_workspace()
    contact = granted_contact(workspace=shop, email="private@example.com")
    segment = Segment.objects.create(workspace=shop, name="all")
    intruder = _api(bakery)  # an owner, with every right, but in the other workspace
    before = _state()
    audits = AuditEvent.objects.count()
    for method, url, body in _foreign_requests(contact, segment):
        response = getattr(intruder, method)(url, body, content_type="application/json")
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["error"] == "not_found"
        assert "private@example.com" not in response.content.decode()
    assert _state() == before
    assert AuditEvent.objects.count() == audits  # nothing was exported or erased


def test_lists_show_only_the_keys_workspace() -> None:
    shop, bakery = make_workspace(), make_workspace()
    make_contact(workspace=shop, email="shop@example.com")
    make_contact(workspace=bakery, email="bakery@example.com")
    Segment.objects.create(workspace=shop, name="shop segment")
    client = _api(bakery)
    emails = [c["email"] for c in client.get("/api/v1/contacts/").json()["results"]]
    assert emails == ["bakery@example.com"]
    segments = client.get("/api/v1/segments/").json()
    names = [s["name"] for s in (segments["results"] if isinstance(segments, dict) else segments)]
    assert names == []


def test_a_segment_name_is_unique_per_workspace_and_a_duplicate_is_a_400() -> None:
    shop, bakery = make_workspace(), make_workspace()
    Segment.objects.create(workspace=shop, name="vip")
    client = _api(bakery)
    created = client.post("/api/v1/segments/", {"name": "vip"}, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert Segment.objects.get(pk=created.json()["id"]).workspace_id == bakery.pk
    again = client.post("/api/v1/segments/", {"name": "vip"}, content_type="application/json")
    assert again.status_code == 400 and "name" in again.json()["detail"]


# --- roles --------------------------------------------------------------------------------------

CONTACT_ENDPOINTS: list[tuple[str, str, str, Callable[[Contact, Segment], Any]]] = [
    ("get", "/api/v1/contacts/", "contacts.view_contact", lambda c, s: None),
    ("get", "/api/v1/contacts/{c}/", "contacts.view_contact", lambda c, s: None),
    ("post", "/api/v1/contacts/", "contacts.add_contact", lambda c, s: {"email": "n@example.com"}),
    (
        "post",
        "/api/v1/contacts/bulk/",
        "contacts.add_contact",
        lambda c, s: {"contacts": [{"email": "b@example.com"}]},
    ),
    ("patch", "/api/v1/contacts/{c}/", "contacts.change_contact", lambda c, s: {"first_name": "X"}),
    ("put", "/api/v1/contacts/{c}/", "contacts.change_contact", lambda c, s: {"first_name": "Y"}),
    (
        "post",
        "/api/v1/contacts/{c}/consent/",
        "contacts.record_consent",
        lambda c, s: {"channel": "sms", "action": "revoke", "source": "form"},
    ),
    (
        "get",
        "/api/v1/contacts/{c}/consent/history/",
        "contacts.view_consentevent",
        lambda c, s: None,
    ),
    ("get", "/api/v1/contacts/{c}/export/", "contacts.export_contact", lambda c, s: None),
    ("get", "/api/v1/segments/", "contacts.view_segment", lambda c, s: None),
    ("post", "/api/v1/segments/", "contacts.add_segment", lambda c, s: {"name": "new one"}),
    ("get", "/api/v1/segments/{s}/", "contacts.view_segment", lambda c, s: None),
    ("patch", "/api/v1/segments/{s}/", "contacts.change_segment", lambda c, s: {"name": "ren"}),
    ("get", "/api/v1/segments/{s}/count/", "contacts.view_segment", lambda c, s: None),
    ("delete", "/api/v1/segments/{s}/", "contacts.delete_segment", lambda c, s: None),
    ("delete", "/api/v1/contacts/{c}/", "contacts.erase_contact", lambda c, s: None),
]


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_gets_exactly_its_rights_and_a_refusal_names_the_permission(role: str) -> None:
    workspace = make_workspace()
    client = _api(workspace, role)
    allowed = ROLE_PERMISSIONS[Role(role)]
    for method, template, perm, body in CONTACT_ENDPOINTS:
        contact = granted_contact(workspace=workspace)
        segment = Segment.objects.create(workspace=workspace, name=f"s{contact.pk}")
        url = template.format(c=contact.pk, s=segment.pk)
        before = _state()
        response = getattr(client, method)(
            url, body(contact, segment), content_type="application/json"
        )
        if perm in allowed:
            assert response.status_code in (200, 201, 204), (role, method, url, response.content)
        else:
            assert response.status_code == 403, (role, method, url, response.content)
            assert response.json()["error"] == "permission_denied"
            assert perm in response.json()["detail"]
            assert _state() == before, (role, method, url)


def test_the_permissions_the_contacts_api_names_are_the_ones_roles_hold() -> None:
    # A typo in a permission_map would deny every role, owners too.
    owner = ROLE_PERMISSIONS[Role.OWNER]
    assert {perm for _, _, perm, _ in CONTACT_ENDPOINTS} <= owner


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer nonsense", "Bearer abc.def", "Token abc"],
    ids=["none", "empty", "malformed", "unknown", "other-scheme"],
)
def test_a_request_without_a_valid_key_is_401(authorization: str | None) -> None:
    make_contact()
    client = Client()
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/api/v1/contacts/", **headers)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert "email" not in response.content.decode()


def test_an_expired_or_revoked_key_is_401_and_changes_nothing() -> None:
    workspace = make_workspace()
    user = make_member(workspace=workspace, role=Role.OWNER)
    expired = make_api_key(
        user=user, workspace=workspace, expiry_date=timezone.now() - timedelta(minutes=1)
    )
    revoked = make_api_key(user=user, workspace=workspace)
    ApiKey.objects.filter(prefix=revoked.partition(".")[0]).update(revoked=True)
    contact = make_contact(workspace=workspace)
    before = _state()
    for key in (expired, revoked):
        client = Client()
        client.defaults.update(bearer(key))
        assert client.get("/api/v1/contacts/").status_code == 401
        assert client.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 401
    assert _state() == before


# --- audit ------------------------------------------------------------------------------------


def test_an_export_and_an_erasure_each_write_an_audit_row_naming_the_contact() -> None:
    workspace = make_workspace()
    client = _api(workspace, Role.PRIVACY)
    contact = granted_contact(workspace=workspace)
    assert client.get(f"/api/v1/contacts/{contact.pk}/export/").status_code == 200
    assert client.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 204
    rows = list(
        AuditEvent.objects.filter(workspace=workspace)
        .order_by("id")
        .values_list("action", "outcome", "target_type", "target_id")
    )
    assert rows == [
        ("contact.export", AuditOutcome.DONE, "contacts.contact", str(contact.pk)),
        ("contact.erase", AuditOutcome.DONE, "contacts.contact", str(contact.pk)),
    ]


def test_a_refused_export_or_erasure_is_audited_as_denied_and_changes_nothing() -> None:
    workspace = make_workspace()
    client = _api(workspace, Role.MARKETER)
    contact = granted_contact(workspace=workspace)
    before = _state()
    assert client.get(f"/api/v1/contacts/{contact.pk}/export/").status_code == 403
    assert client.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 403
    assert _state() == before
    denied = list(
        AuditEvent.objects.filter(workspace=workspace)
        .order_by("id")
        .values_list("action", "outcome", "target_id", "detail")
    )
    assert denied == [
        (
            "contact.export",
            AuditOutcome.DENIED,
            str(contact.pk),
            {"missing": "contacts.export_contact"},
        ),
        (
            "contact.erase",
            AuditOutcome.DENIED,
            str(contact.pk),
            {"missing": "contacts.erase_contact"},
        ),
    ]


def test_a_consent_change_by_a_member_is_audited_with_the_change() -> None:
    workspace = make_workspace()
    contact = make_contact(workspace=workspace)
    response = _api(workspace, Role.MARKETER).post(
        f"/api/v1/contacts/{contact.pk}/consent/",
        {"channel": "sms", "action": "grant", "source": "form"},
        content_type="application/json",
    )
    assert response.status_code == 200
    audit = AuditEvent.objects.get(workspace=workspace)
    assert (audit.action, audit.target_id, audit.detail["channel"]) == (
        "consent.grant",
        str(contact.pk),
        "sms",
    )


# --- public pages and the push endpoint -------------------------------------------------------


@pytest.fixture
def _no_rate_limit(settings: Any) -> None:
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])


@pytest.mark.usefixtures("_no_rate_limit")
def test_an_anonymous_push_subscription_joins_the_workspace_its_url_names() -> None:
    shop = make_workspace()
    response = Client().post(
        f"/push/{shop.slug}/subscribe/",
        {"subscription": _subscription()},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    sub = PushSubscription.objects.select_related("contact").get()
    assert sub.workspace_id == shop.pk and sub.contact.workspace_id == shop.pk
    assert Consent.objects.get(contact=sub.contact).workspace_id == shop.pk


@pytest.mark.usefixtures("_no_rate_limit")
def test_a_push_token_is_refused_on_another_workspaces_url_and_an_unknown_slug_is_404() -> None:
    shop, bakery = make_workspace(), make_workspace()
    contact = make_contact(workspace=shop)
    body = {"subscription": _subscription(), "token": links.push_token(contact_id=contact.pk)}
    before = _state()
    wrong = Client().post(f"/push/{bakery.slug}/subscribe/", body, content_type="application/json")
    assert wrong.status_code == 400 and wrong.json()["error"] == "bad_link"
    unknown = Client().post("/push/no-such-shop/subscribe/", body, content_type="application/json")
    assert unknown.status_code == 404
    legacy = Client().post(
        "/push/subscribe/", {"subscription": _subscription()}, content_type="application/json"
    )
    assert legacy.status_code == 400  # no token, no slug: no workspace to join
    assert _state() == before and not PushSubscription.objects.exists()
    right = Client().post(f"/push/{shop.slug}/subscribe/", body, content_type="application/json")
    assert right.status_code == 201
    assert PushSubscription.objects.get().workspace_id == shop.pk


@pytest.mark.usefixtures("_no_rate_limit")
def test_the_same_browser_may_subscribe_to_two_workspaces() -> None:
    shop, bakery = make_workspace(), make_workspace()
    sub = _subscription()
    for workspace in (shop, bakery):
        response = Client().post(
            f"/push/{workspace.slug}/subscribe/",
            {"subscription": sub},
            content_type="application/json",
        )
        assert response.status_code == 201
    assert set(PushSubscription.objects.values_list("workspace_id", flat=True)) == {
        shop.pk,
        bakery.pk,
    }


def test_the_preference_centre_acts_in_the_contacts_workspace() -> None:
    shop, bakery = make_workspace(), make_workspace()
    make_contact(workspace=bakery, email="taken@example.com")
    contact = make_contact(workspace=shop, email="me@example.com")
    url = _path(links.preference_url(contact_id=contact.pk))
    page = Client().get(url)
    assert f"/push/{shop.slug}/subscribe/" in page.content.decode()
    response = Client().post(url, {"email": "taken@example.com", "phone": ""})
    assert response.status_code == 200, response.content.decode()[:500]
    # A new address applies once confirmed from that mailbox (tests/contacts/test_links.py); an
    # address another workspace holds is free in this one.
    confirm = links.email_change_url(
        contact_id=contact.pk, email="taken@example.com", previous_email="me@example.com"
    )
    assert Client().post(_path(confirm)).status_code == 200
    contact.refresh_from_db()
    assert contact.email == "taken@example.com"
    assert ConsentEvent.objects.get(contact=contact).workspace_id == shop.pk


# --- the import command -----------------------------------------------------------------------


def test_the_import_command_needs_a_known_workspace_and_imports_into_it(tmp_path: Any) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,tags\nann@example.com,vip\n")
    with pytest.raises(CommandError, match="workspace"):
        call_command("import_contacts", str(path))
    with pytest.raises(CommandError, match="no workspace with the slug 'nope'"):
        call_command("import_contacts", str(path), "--workspace", "nope")
    bakery = make_workspace()
    call_command("import_contacts", str(path), "--workspace", bakery.slug, stdout=io.StringIO())
    contact = Contact.objects.get()
    assert contact.workspace_id == bakery.pk
    assert ContactTag.objects.get().workspace_id == bakery.pk
    assert Tag.objects.get().workspace_id == bakery.pk
