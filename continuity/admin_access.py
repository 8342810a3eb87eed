"""The admin's side of tenancy: the session's current workspace, the switcher, and one ModelAdmin
base that scopes every owned model to that workspace and asks the member's role for each right.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from continuity.models import Workspace
from continuity.tenancy import Access, access_for, workspaces_of

SESSION_KEY = "continuity_workspace_id"


def _current_workspace(request: HttpRequest) -> Workspace | None:
    user = request.user
    if not user.is_authenticated:
        return None
    allowed = workspaces_of(user).order_by("name", "pk")
    wanted = request.session.get(SESSION_KEY)
    if wanted is not None:
        workspace = allowed.filter(pk=wanted).first()
        if workspace is not None:
            return workspace
    # Nothing chosen yet: the user's own first workspace (a superuser may see every workspace,
    # but starts in one they belong to).
    own = allowed.filter(memberships__user_id=user.pk).first()
    return own if own is not None else allowed.first()


def request_workspace(request: HttpRequest) -> Workspace | None:
    """The workspace the session acts in (computed once per request)."""
    if getattr(request, "_workspace_resolved", False):
        return request._workspace_cache  # type: ignore[attr-defined]
    workspace = _current_workspace(request)
    request._workspace_cache = workspace  # type: ignore[attr-defined]
    request._workspace_resolved = True  # type: ignore[attr-defined]
    return workspace


def request_access(request: HttpRequest) -> Access:
    cached = getattr(request, "_access_cache", None)
    if cached is not None:
        return cached
    access = access_for(request.user, request_workspace(request))
    request._access_cache = access  # type: ignore[attr-defined]
    return access


@require_POST
def workspace_switch(request: HttpRequest) -> HttpResponse:
    """The admin's switcher posts here; a workspace the user is not in is "not found"."""
    try:
        workspace = workspaces_of(request.user).get(pk=int(request.POST.get("workspace", "")))
    except (ValueError, Workspace.DoesNotExist):
        raise Http404 from None
    request.session[SESSION_KEY] = workspace.pk
    target = request.POST.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/admin/"
    return HttpResponseRedirect(target)


def _perm(model: type[models.Model], action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


class WorkspaceScopedAdmin(admin.ModelAdmin):
    """Base of every owned model's admin: rows, choices and rights of the current workspace."""

    def access(self, request: HttpRequest) -> Access:
        return request_access(request)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        workspace = request_workspace(request)
        qs = super().get_queryset(request)
        if workspace is None:
            return qs.none()
        return qs.filter(workspace_id=workspace.pk)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request_workspace(request) is not None and any(
            self.access(request).has(_perm(self.model, action))
            for action in ("view", "add", "change", "delete")
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        access = self.access(request)
        return access.workspace is not None and (
            access.has(_perm(self.model, "view")) or access.has(_perm(self.model, "change"))
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        access = self.access(request)
        return access.workspace is not None and access.has(_perm(self.model, "add"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        access = self.access(request)
        return access.workspace is not None and access.has(_perm(self.model, "change"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        access = self.access(request)
        return access.workspace is not None and access.has(_perm(self.model, "delete"))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.workspace = self.access(request).workspace_required
        super().save_model(request, obj, form, change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        workspace = self.access(request).workspace_required
        for instance in formset.save(commit=False):
            if hasattr(instance, "workspace_id") and instance.workspace_id is None:
                instance.workspace = workspace
            instance.save()
        for instance in formset.deleted_objects:
            instance.delete()
        formset.save_m2m()

    def _limit_to_workspace(self, request: HttpRequest, field: Any) -> None:
        if field is None or not isinstance(field, ModelChoiceField | ModelMultipleChoiceField):
            return
        model = field.queryset.model
        if any(f.name == "workspace" for f in model._meta.get_fields()):
            workspace = request_workspace(request)
            field.queryset = (
                field.queryset.filter(workspace_id=workspace.pk)
                if workspace is not None
                else field.queryset.none()
            )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        self._limit_to_workspace(request, field)
        return field

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        self._limit_to_workspace(request, field)
        return field

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        # The workspace is the session's, never a form field a member could point elsewhere.
        return [*(super().get_exclude(request, obj) or ()), "workspace"]


class ReadOnlyAdminMixin:
    """For records nobody edits in the admin (evidence, the audit trail): view only."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WorkspaceScopedInline(admin.TabularInline):
    """Inline of an owned model: same workspace rules as its parent page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request_access(request).has(_perm(self.model, "view"))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request_access(request).has(_perm(self.model, "add"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request_access(request).has(_perm(self.model, "change"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request_access(request).has(_perm(self.model, "delete"))

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*(super().get_exclude(request, obj) or ()), "workspace"]


def admin_view_require(request: HttpRequest, perm: str) -> Access:
    """For custom admin views: the access, after checking the perm (MissingPermission -> 403)."""
    access = request_access(request)
    access.workspace_required  # noqa: B018 - raises PermissionDenied without a workspace
    access.require(perm)
    return access
