"""The permission matrix, generated from the URLconf and the admin registry.

Every API operation and every admin URL is tried as every role (and as an operator, an outsider
and nobody) against two workspaces: allowed or denied exactly as declared, another workspace's
object is "not found", and a denied request changes nothing. A new endpoint without a declared
rule fails here, so no view can skip the check:
- API views declare ``permission_map`` on a WorkspaceViewMixin / InstallAPIView base;
- admin pages of owned models come from WorkspaceScopedAdmin (model permissions per role);
- custom admin views are listed in CUSTOM_ADMIN_RULES below with the permission they need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from contacts.models import ImportRun, ImportVia
from continuity.admin_access import SESSION_KEY, WorkspaceScopedAdmin
from continuity.api_access import ANY_MEMBER, WorkspaceViewMixin
from continuity.models import AuditEvent, Role, Workspace
from continuity.roles import OPERATOR_GROUP, OPERATOR_PERMISSIONS, ROLE_PERMISSIONS
from tests.campaigns.factories import make_campaign
from tests.contacts.factories import make_contact
from tests.workspaces import bearer, make_api_key, make_member, make_workspace

pytestmark = pytest.mark.django_db

WORKSPACE_ROLES = [Role.OWNER, Role.MARKETER, Role.PRIVACY, Role.VIEWER]
OWNED_APPS = ("contacts", "campaigns", "delivery")

# API routes that are not workspace- or operator-scoped, with why.
API_OPEN = {
    "schema": "the OpenAPI document describes the API, not anyone's data",
    "me": "answers who the credentials belong to; any authenticated caller",
}

# Which object a route's URL kwarg names, by route-name prefix.
ROUTE_OBJECTS = {
    "contacts-": "contact",
    "segments-": "segment",
    "campaigns-": "campaign",
    "outages-": "window",
    "reroute-window-": "window",
}

# Custom admin views (beyond changelist/add/change/delete/history) and the permission each needs.
# Keyed by URL name; kwargs name the object the URL takes, as in ROUTE_OBJECTS.
CUSTOM_ADMIN_RULES: dict[str, tuple[str, dict[str, str]]] = {
    "contacts_contact_export": ("contacts.export_contact", {}),
    "contacts_contact_import": ("contacts.import_contact", {}),
    "contacts_contact_process_import": ("contacts.import_contact", {}),
    "contacts_segment_count": ("contacts.view_segment", {}),
    "contacts_importrun_report": ("contacts.view_importrun", {"run_id": "importrun"}),
    "campaigns_campaign_calendar": ("campaigns.view_campaign", {}),
    "campaigns_campaign_contact_search": ("contacts.view_contact", {}),
    "campaigns_campaign_preview": ("campaigns.view_campaign", {"object_id": "campaign"}),
    "campaigns_campaign_audience": ("campaigns.view_campaign", {"object_id": "campaign"}),
    "campaigns_campaign_test_send": ("campaigns.change_campaign", {"object_id": "campaign"}),
    "reroute_dashboard": ("campaigns.view_reroute", {}),
    "reroute_drill": ("campaigns.run_drill", {}),
    "reroute_window_report": ("campaigns.view_reroute", {"window_id": "window"}),
    "reroute_window_report_csv": ("campaigns.view_reroute", {"window_id": "window"}),
    "reroute_window_contacts_csv": ("campaigns.view_reroute", {"window_id": "window"}),
    "campaign_engagement": ("campaigns.view_campaign", {"campaign_id": "campaign"}),
    "continuity_auditevent_export": ("continuity.view_auditevent", {}),
    "continuity_retentionpolicy_records": ("continuity.view_processing_records", {}),
    "continuity_retentionpolicy_records_download": ("continuity.view_processing_records", {}),
    # Django's own UserAdmin: superusers only (no role holds auth.change_user).
    "auth_user_password_change": ("auth.change_user", {"id": "self"}),
}
# Owned models whose admin pages need another permission than the model's own view/add.
ADMIN_MODEL_RULES: dict[str, tuple[str, str]] = {
    # Provider credentials are the owner's: one page, shown and changed with manage_credentials.
    "delivery.WorkspaceCredentials": (
        "continuity.manage_credentials",
        "continuity.manage_credentials",
    ),
}
# Rows that may belong to no workspace; their admin is install-level (operators).
WORKSPACE_OPTIONAL = {"delivery.ProviderReceipt"}
STANDARD_ADMIN_VIEWS = ("changelist", "add", "change", "delete", "history", "autocomplete")


@dataclass
class Side:
    workspace: Workspace
    objects: dict[str, models.Model]


@dataclass
class World:
    a: Side
    b: Side
    users: dict[str, Any]  # role -> member of A; "operator"; "outsider" (owner of B only)
    keys: dict[str, str]


def _side(workspace: Workspace, window: models.Model) -> Side:
    campaign = make_campaign(workspace=workspace)
    contact = make_contact(workspace=workspace)
    assert campaign.segment is not None and campaign.message is not None
    return Side(
        workspace=workspace,
        objects={
            "contact": contact,
            "segment": campaign.segment,
            "campaign": campaign,
            "message": campaign.message,
            "window": window,
            "importrun": ImportRun.objects.create(workspace=workspace, via=ImportVia.COMMAND),
        },
    )


@pytest.fixture
def world() -> World:
    from outages.models import OutageWindow

    window = OutageWindow.objects.create(network="instagram", opened_at=timezone.now())
    a = _side(make_workspace(), window)
    b = _side(make_workspace(), window)
    users: dict[str, Any] = {
        str(role): make_member(workspace=a.workspace, role=role) for role in WORKSPACE_ROLES
    }
    users["outsider"] = make_member(workspace=b.workspace, role=Role.OWNER)
    operator = get_user_model().objects.create_user(username="operator", is_staff=True)
    operator.groups.add(Group.objects.get(name=OPERATOR_GROUP))
    users["operator"] = operator
    keys = {
        str(role): make_api_key(user=users[role], workspace=a.workspace) for role in WORKSPACE_ROLES
    }
    keys["outsider"] = make_api_key(user=users["outsider"], workspace=b.workspace)
    keys["operator"] = make_api_key(user=operator, workspace=None)
    return World(a=a, b=b, users=users, keys=keys)


# --- enumerating the URLconf ------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # the pattern, for messages
    view: Any
    kwarg_names: tuple[str, ...]


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = namespace
            if pattern.namespace:
                ns = f"{namespace}{pattern.namespace}:"
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            callback = pattern.callback
            view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            yield Route(
                name=f"{namespace}{pattern.name}" if pattern.name else "",
                path=prefix + str(pattern.pattern),
                view=view or callback,
                kwarg_names=tuple(pattern.pattern.regex.groupindex),
            )


def api_routes() -> list[Route]:
    return [r for r in _walk(get_resolver().url_patterns) if r.path.startswith("api/v1/")]


def api_cases() -> list[tuple[Route, str]]:
    cases = []
    for route in api_routes():
        if route.name in API_OPEN:
            continue
        for method in sorted(getattr(route.view, "permission_map", {}) or {"GET": ""}):
            cases.append((route, method))
    return cases


def _route_object(route_name: str) -> str | None:
    for prefix, kind in ROUTE_OBJECTS.items():
        if route_name.startswith(prefix):
            return kind
    return None


def _url(route: Route, side: Side) -> str:
    kind = _route_object(route.name)
    kwargs = {name: side.objects[kind].pk for name in route.kwarg_names} if kind else {}
    return reverse(route.name, kwargs=kwargs)


def _snapshot(side: Side) -> dict[str, Any]:
    counts = {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.app_label in (*OWNED_APPS, "outages", "continuity")
        and model is not AuditEvent
    }
    rows = {}
    for kind, obj in side.objects.items():
        fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
        rows[kind] = model_to_dict(fresh) if fresh is not None else None
    return {"counts": counts, "rows": rows}


def _call(client: Client, method: str, url: str, key: str | None) -> Any:
    headers = bearer(key) if key else {}
    return client.generic(method, url, data=b"{}", content_type="application/json", **headers)


def _allowed(perm: str, role: str) -> bool:
    return perm == ANY_MEMBER or perm in ROLE_PERMISSIONS[role]


# --- the API ------------------------------------------------------------------------------------


def test_every_api_view_declares_a_permission_for_each_method() -> None:
    undeclared = []
    for route in api_routes():
        if route.name in API_OPEN:
            continue
        view = route.view
        if not (isinstance(view, type) and issubclass(view, WorkspaceViewMixin)):
            undeclared.append(f"{route.path} ({view}): not on a WorkspaceViewMixin base")
            continue
        if not view.permission_map:
            undeclared.append(f"{route.path} ({view.__name__}): empty permission_map")
        for method, perm in view.permission_map.items():
            if perm != ANY_MEMBER and "." not in perm:
                undeclared.append(f"{route.path} {method}: {perm!r} is not app.codename")
    assert api_routes(), "the URLconf walk found no API route"
    assert not undeclared, "\n".join(undeclared)


def test_declared_api_permissions_exist() -> None:
    from django.contrib.auth.models import Permission

    known = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    declared = {
        perm
        for route in api_routes()
        for perm in (getattr(route.view, "permission_map", None) or {}).values()
        if perm != ANY_MEMBER
    }
    assert declared - known == set()


@pytest.mark.parametrize(
    ("route", "method"), api_cases(), ids=lambda v: v.name if isinstance(v, Route) else v
)
def test_api_without_credentials_is_401(world: World, route: Route, method: str) -> None:
    before = _snapshot(world.a)
    response = _call(Client(), method, _url(route, world.a), None)
    assert response.status_code == 401, response.content
    assert _snapshot(world.a) == before


@pytest.mark.parametrize(
    ("route", "method"), api_cases(), ids=lambda v: v.name if isinstance(v, Route) else v
)
@pytest.mark.parametrize("role", [*WORKSPACE_ROLES, "operator"])
def test_api_role_is_allowed_or_denied_as_declared(
    world: World, route: Route, method: str, role: str
) -> None:
    perm = route.view.permission_map[method]
    install_wide = route.view.install_wide
    if install_wide:
        allowed = role == "operator" and perm in OPERATOR_PERMISSIONS
    else:
        allowed = role != "operator" and _allowed(perm, role)
    before = _snapshot(world.a)
    response = _call(Client(), method, _url(route, world.a), world.keys[role])
    if allowed:
        assert response.status_code not in (401, 403, 404, 405), response.content
        assert response.status_code < 500, response.content
    else:
        assert response.status_code == 403, response.content
        assert _snapshot(world.a) == before
        if role != "operator" or install_wide:
            assert perm in response.json()["detail"], response.content


@pytest.mark.parametrize(
    ("route", "method"),
    [
        (r, m)
        for r, m in api_cases()
        # Outage windows are install-wide facts: every workspace may ask about its own part.
        if _route_object(r.name) not in (None, "window")
        and not r.view.install_wide
        and r.kwarg_names
    ],
    ids=lambda v: v.name if isinstance(v, Route) else v,
)
def test_api_another_workspaces_object_is_not_found(
    world: World, route: Route, method: str
) -> None:
    """The outsider owns workspace B (every right there) and asks for A's object: 404."""
    before = _snapshot(world.a)
    response = _call(Client(), method, _url(route, world.a), world.keys["outsider"])
    assert response.status_code == 404, response.content
    assert _snapshot(world.a) == before


# --- the admin ----------------------------------------------------------------------------------


def _owned(model: type[models.Model]) -> bool:
    return (
        any(f.name == "workspace" for f in model._meta.get_fields())
        and model._meta.app_label in OWNED_APPS
        and model._meta.label not in WORKSPACE_OPTIONAL
    )


def test_every_owned_models_admin_is_workspace_scoped() -> None:
    unscoped = [
        f"{model._meta.label}: {type(model_admin).__name__}"
        for model, model_admin in admin.site._registry.items()
        if _owned(model) and not isinstance(model_admin, WorkspaceScopedAdmin)
    ]
    assert not unscoped, unscoped


def _custom_admin_urls() -> list[tuple[str, type[models.Model]]]:
    found = []
    for model, model_admin in admin.site._registry.items():
        info = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name:
                continue
            if name.startswith(info) and name[len(info) :] in STANDARD_ADMIN_VIEWS:
                continue
            found.append((name, model))
    return found


def test_every_custom_admin_view_has_a_declared_rule() -> None:
    undeclared = [name for name, _model in _custom_admin_urls() if name not in CUSTOM_ADMIN_RULES]
    assert _custom_admin_urls(), "the admin registry walk found no custom view"
    assert not undeclared, f"custom admin views without a rule in CUSTOM_ADMIN_RULES: {undeclared}"


def _admin_client(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    session = client.session
    session[SESSION_KEY] = world.a.workspace.pk
    session.save()
    return client


def _owned_admins() -> list[type[models.Model]]:
    return [model for model in admin.site._registry if _owned(model)]


@pytest.mark.parametrize("model", _owned_admins(), ids=lambda m: m._meta.label)
@pytest.mark.parametrize("role", WORKSPACE_ROLES)
def test_admin_changelist_and_add_follow_the_role(
    world: World, model: type[models.Model], role: str
) -> None:
    label = f"{model._meta.app_label}.%s_{model._meta.model_name}"
    perms = ROLE_PERMISSIONS[role]
    view_perm, add_perm = ADMIN_MODEL_RULES.get(model._meta.label, (label % "view", label % "add"))
    client = _admin_client(world, role)
    info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    changelist = client.get(reverse(f"{info}_changelist"))
    may_view = view_perm in perms or (
        model._meta.label not in ADMIN_MODEL_RULES and label % "change" in perms
    )
    assert changelist.status_code == (200 if may_view else 403)
    model_admin = admin.site._registry[model]
    try:
        add_url = reverse(f"{info}_add")
    except NoReverseMatch:  # a page with no add view (one row per workspace)
        return
    add = client.get(add_url)
    if add_perm in perms and model_admin.has_add_permission(_request_for(world, role)):
        assert add.status_code == 200
    else:
        assert add.status_code == 403


def _request_for(world: World, role: str) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = world.users[role]
    request.session = {SESSION_KEY: world.a.workspace.pk}  # type: ignore[assignment]
    return request


@pytest.mark.parametrize(
    "kind", ["contact", "segment", "campaign", "message"], ids=lambda k: f"admin-{k}"
)
def test_admin_another_workspaces_object_reads_as_missing(world: World, kind: str) -> None:
    """An owner of A opens B's object in A's admin: the same answer as for an id that never
    existed, and B's row is untouched."""
    client = _admin_client(world, Role.OWNER)
    obj = world.b.objects[kind]
    info = f"admin:{obj._meta.app_label}_{obj._meta.model_name}"
    foreign = client.get(reverse(f"{info}_change", args=[obj.pk]))
    missing = client.get(reverse(f"{info}_change", args=[10**9]))
    assert foreign.status_code == missing.status_code
    assert foreign.status_code in (302, 404)
    before = _snapshot(world.b)
    client.post(reverse(f"{info}_delete", args=[obj.pk]), {"post": "yes"})
    assert _snapshot(world.b) == before


@pytest.mark.parametrize("name", sorted(CUSTOM_ADMIN_RULES))
@pytest.mark.parametrize("role", WORKSPACE_ROLES)
def test_custom_admin_views_follow_the_role(world: World, name: str, role: str) -> None:
    perm, kwarg_objects = CUSTOM_ADMIN_RULES[name]
    kwargs = {
        arg: world.users[role].pk if kind == "self" else world.a.objects[kind].pk
        for arg, kind in kwarg_objects.items()
    }
    before = _snapshot(world.a)
    response = _admin_client(world, role).get(reverse(f"admin:{name}", kwargs=kwargs))
    if perm in ROLE_PERMISSIONS[role]:
        assert response.status_code < 400 or response.status_code == 405
    else:
        assert response.status_code == 403
        assert _snapshot(world.a) == before


def _install_admins() -> list[type[models.Model]]:
    return [
        model
        for model in admin.site._registry
        if model._meta.app_label in ("outages", "auth", "django_celery_beat")
        or model._meta.label in WORKSPACE_OPTIONAL
    ]


@pytest.mark.parametrize("model", _install_admins(), ids=lambda m: m._meta.label)
@pytest.mark.parametrize("who", [Role.OWNER, Role.VIEWER, "operator"])
def test_install_level_admin_pages_are_for_operators_only(
    world: World, model: type[models.Model], who: str
) -> None:
    client = Client()
    client.force_login(world.users[who])
    response = client.get(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    )
    view = f"{model._meta.app_label}.view_{model._meta.model_name}"
    operator_may = who == "operator" and view in OPERATOR_PERMISSIONS
    assert response.status_code == (200 if operator_may else 403)
