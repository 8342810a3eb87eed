"""The admin of tenancy: workspaces and their settings, members, API keys and the audit trail.

Rights come from the member's role in the session's workspace (continuity/roles.py); install-wide
rows (operator changes, manual outages) are an operator's. A refused change of members is audited
before the 403 is answered, outside the admin's own transaction, so the refusal row survives.
"""

from __future__ import annotations

import csv
import json
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Max, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.urls import URLPattern, path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework_api_key.models import APIKey

from continuity.admin_access import (
    ReadOnlyAdminMixin,
    WorkspaceScopedAdmin,
    request_access,
    request_workspace,
)
from continuity.api_keys import api_key_issue, api_key_revoke
from continuity.audit import audit_denied, audit_record
from continuity.errors import LastOwner, TenancyError
from continuity.models import ApiKey, AuditEvent, Membership, Role, Workspace
from continuity.roles import role_permissions, user_is_operator
from continuity.sms_keywords import (
    HELP,
    START,
    STOP,
    KeywordListInvalid,
    keyword_clashes,
    keywords_parse,
)
from continuity.spreadsheet import spreadsheet_row_neutralise
from continuity.tenancy import Access, MissingPermission, access_for, workspaces_of
from continuity.workspaces import (
    membership_remove,
    membership_set,
    user_ensure,
    username_clean,
)

MANAGE_MEMBERS = "continuity.manage_members"
CHANGE_WORKSPACE = "continuity.change_workspace"
VIEW_AUDIT = "continuity.view_auditevent"

# The library's own concrete APIKey model is unused: our keys are continuity.ApiKey (user and
# workspace bound). Its admin page would only confuse.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


def _refused(request: HttpRequest, perm: str) -> HttpResponse:
    # An answered 403 rather than a raised PermissionDenied: nothing may roll the audit row back.
    return HttpResponseForbidden(
        str(MissingPermission(perm)), content_type="text/plain; charset=utf-8"
    )


# --- Workspaces -----------------------------------------------------------------------------------

_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")


def _language_choices() -> list[tuple[str, str]]:
    # Evaluated per form, in the reader's language: "Italiano" to an Italian admin.
    return [
        ("", _("(the install's: %(code)s)") % {"code": settings.LANGUAGE_CODE}),
        *(
            (code, translation.get_language_info(code)["name_translated"])
            for code, _n in settings.LANGUAGES
        ),
    ]


def _timezone_choices() -> list[tuple[str, str]]:
    zones = sorted(zone for zone in zoneinfo.available_timezones() if "/" in zone or zone == "UTC")
    return [("", _("(the install's default)")), *((zone, zone) for zone in zones)]


class WorkspaceForm(forms.ModelForm):
    class Meta:
        model = Workspace
        fields = [
            "slug",
            "name",
            "language",
            "timezone",
            "sms_budget_segments",
            "frequency_cap_per_day",
            "quiet_hours_sms",
            "sms_stop_keywords",
            "sms_start_keywords",
            "sms_help_keywords",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Choices rather than free text; a value saved before (or by hand) stays choosable.
        for name, choices in (("language", _language_choices()), ("timezone", _timezone_choices())):
            field = self.fields.get(name)
            if field is None:  # shown read-only to this user
                continue
            current = getattr(self.instance, name, "") or ""
            if current and current not in {value for value, _label in choices}:
                choices.append((current, current))
            self.fields[name] = forms.ChoiceField(
                label=field.label, help_text=field.help_text, required=False, choices=choices
            )

    def clean_quiet_hours_sms(self) -> str:
        value = (self.cleaned_data.get("quiet_hours_sms") or "").strip()
        if value and not _QUIET_HOURS.match(value):
            raise ValidationError(_("Use HH:MM-HH:MM, for example 21:00-08:00."))
        return value

    def clean_timezone(self) -> str:
        value = (self.cleaned_data.get("timezone") or "").strip()
        if value and value not in zoneinfo.available_timezones():
            raise ValidationError(
                _("%(value)s is not a time zone name such as Europe/Rome.") % {"value": value}
            )
        return value

    def _keywords(self, name: str) -> list[str]:
        try:
            return keywords_parse(self.cleaned_data.get(name) or "")
        except KeywordListInvalid as exc:
            raise ValidationError(str(exc)) from None

    def clean_sms_stop_keywords(self) -> str:
        return ", ".join(self._keywords("sms_stop_keywords"))

    def clean_sms_start_keywords(self) -> str:
        return ", ".join(self._keywords("sms_start_keywords"))

    def clean_sms_help_keywords(self) -> str:
        return ", ".join(self._keywords("sms_help_keywords"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        lists = {
            kind: keywords_parse(cleaned.get(f"sms_{kind}_keywords") or "")
            for kind in (STOP, START, HELP)
            if f"sms_{kind}_keywords" in cleaned
        }
        clashes = keyword_clashes(lists)
        if clashes:
            raise ValidationError(
                _("These keywords would mean two things: %(words)s.")
                % {"words": ", ".join(clashes)}
            )
        return cleaned

    def clean_language(self) -> str:
        value = (self.cleaned_data.get("language") or "").strip()
        known = {code for code, _name in settings.LANGUAGES}
        if value and value not in known and value.split("-")[0] not in known:
            raise ValidationError(
                _("%(value)s is not one of the languages: %(known)s.")
                % {"value": value, "known": ", ".join(sorted(known))}
            )
        return value


def _workspace_access(request: HttpRequest, workspace: Workspace) -> Access | None:
    try:
        return access_for(request.user, workspace)
    except Http404:
        return None


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    """Superusers create and delete workspaces; an owner changes their workspace's settings;
    members see the workspaces they belong to, operators (install-wide) every one's name."""

    form = WorkspaceForm
    list_display = ["name", "slug", "language_name", "timezone", "created_at"]
    search_fields = ["name", "slug"]

    @admin.display(description=gettext_lazy("default language"), ordering="language")
    def language_name(self, workspace: Workspace) -> str:
        if not workspace.language:
            return ""
        try:
            return str(translation.get_language_info(workspace.language)["name_translated"])
        except KeyError:
            return workspace.language

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        qs = super().get_queryset(request)
        user: Any = request.user
        # Operators hold continuity.view_workspace install-wide: settings, never client data.
        if user.is_superuser or user.has_perm("continuity.view_workspace"):
            return qs
        return qs.filter(pk__in=workspaces_of(user).values("pk"))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user: Any = request.user
        if user.is_active and user.is_superuser:
            return True
        if obj is None:
            roles = Membership.objects.filter(user_id=user.pk).values_list("role", flat=True)
            return any(CHANGE_WORKSPACE in role_permissions(role) for role in set(roles))
        access = _workspace_access(request, obj)
        return access is not None and access.has(CHANGE_WORKSPACE)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The slug names the workspace in commands and keys: only a superuser renames it.
        if obj is not None and not request.user.is_superuser:
            return ["slug", "created_at"]
        return ["created_at"]

    def save_model(self, request: HttpRequest, obj: Workspace, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        access = _workspace_access(request, obj) or request_access(request)
        audit_record(
            access=access,
            action="workspace.change" if change else "workspace.create",
            target=obj,
            workspace=obj,
            detail={"fields": sorted(form.changed_data)},
        )


# --- Members --------------------------------------------------------------------------------------


class MembershipAddForm(forms.ModelForm):
    # A username rather than a list of every user of the install: one client's owner must not
    # browse the agency's (or other clients') people.
    username = forms.CharField(
        label=gettext_lazy("username"),
        max_length=150,
        help_text=gettext_lazy(
            "An existing user, or a new one, created without a password: an operator sets it "
            "with `manage.py changepassword USERNAME`."
        ),
    )
    workspace: Workspace | None = None

    class Meta:
        model = Membership
        fields = ["username", "role"]

    def clean_username(self) -> str:
        username = username_clean(username=self.cleaned_data.get("username") or "")
        user_model = get_user_model()
        if (
            self.workspace is not None
            and Membership.objects.filter(
                workspace=self.workspace,
                **{f"user__{user_model.USERNAME_FIELD}": username},
            ).exists()
        ):
            raise ValidationError(
                _("%(user)s is a member already: change their role instead.") % {"user": username}
            )
        return username


class MembershipChangeForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        current = self.instance
        if (
            current.pk
            and current.role == Role.OWNER
            and role != Role.OWNER
            and not Membership.objects.filter(workspace_id=current.workspace_id, role=Role.OWNER)
            .exclude(pk=current.pk)
            .exists()
        ):
            raise ValidationError(_("A workspace keeps at least one owner."))
        return str(role)


@admin.register(Membership)
class MembershipAdmin(WorkspaceScopedAdmin):
    """The current workspace's members. Owners (continuity.manage_members) add, change and
    remove them; every change and every refusal is in the audit trail."""

    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username"]
    list_select_related = ["user"]

    def _may_manage(self, request: HttpRequest) -> bool:
        access = self.access(request)
        return access.workspace is not None and access.has(MANAGE_MEMBERS)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._may_manage(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["user", "created_at"] if obj is not None else []

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = MembershipChangeForm if obj is not None else MembershipAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.workspace = request_workspace(request)  # type: ignore[attr-defined]
        return form

    def _refuse(self, request: HttpRequest, action: str, target: Any = None) -> HttpResponse:
        audit_denied(access=self.access(request), action=action, target=target, perm=MANAGE_MEMBERS)
        return _refused(request, MANAGE_MEMBERS)

    def _target(self, request: HttpRequest, object_id: str | None) -> Membership | None:
        if object_id is None:
            return None
        try:
            return self.get_queryset(request).filter(pk=int(object_id)).first()
        except (TypeError, ValueError):
            return None

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request_workspace(request) is not None and not self._may_manage(request):
            return self._refuse(request, "membership.add")
        return super().add_view(request, form_url, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and not self._may_manage(request):
            target = self._target(request, object_id)
            if target is not None:
                return self._refuse(request, "membership.change", target)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        target = self._target(request, object_id)
        if target is not None and not self._may_manage(request):
            return self._refuse(request, "membership.remove", target)
        if (
            target is not None
            and target.role == Role.OWNER
            and not Membership.objects.filter(workspace_id=target.workspace_id, role=Role.OWNER)
            .exclude(pk=target.pk)
            .exists()
        ):
            self.message_user(request, _("A workspace keeps at least one owner."), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:continuity_membership_change", args=[target.pk])
            )
        return super().delete_view(request, object_id, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if (
            request.method == "POST"
            and request.POST.get("action") == "delete_selected"
            and not self._may_manage(request)
        ):
            return self._refuse(request, "membership.remove")
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        access = self.access(request)
        user = obj.user if change else user_ensure(username=form.cleaned_data["username"])[0]
        membership, _outcome = membership_set(
            access=access,
            workspace=access.workspace_required,
            user=user,
            role=form.cleaned_data["role"],
        )
        # The admin's redirect and its log entry read the row back from obj.
        obj.pk, obj.user, obj.workspace = membership.pk, user, membership.workspace
        obj.created_at = membership.created_at

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_remove(access=self.access(request), membership=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("user", "workspace"):
            try:
                membership_remove(access=self.access(request), membership=membership)
            except LastOwner as exc:
                self.message_user(
                    request,
                    _("%(user)s: %(reason)s") % {"user": membership.user, "reason": exc.detail},
                    messages.ERROR,
                )


# --- API keys -------------------------------------------------------------------------------------


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "workspace", "expiry_date"]

    def clean_expiry_date(self) -> Any:
        value = self.cleaned_data.get("expiry_date")
        if value is not None and value <= timezone.now():
            raise ValidationError(_("An expiry date lies in the future."))
        return value


class _RevokedFilter(admin.BooleanFieldListFilter):
    # The library's field has no translatable name of its own.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = gettext_lazy("revoked")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Everyone sees and revokes their own keys; owners the keys of their workspace. A key made
    here is shown once, in a message; only its hash is kept."""

    form = ApiKeyForm
    list_display = [
        "prefix", "name", "user", "workspace", "created", "expiry_date", "last_used_at",
        "revoked",
    ]  # fmt: skip
    list_filter = [("revoked", _RevokedFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user", "workspace"]
    actions = ["revoke_keys"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        qs = super().get_queryset(request)
        user: Any = request.user
        if user.is_active and user.is_superuser:
            return qs
        mine = Q(user_id=user.pk)
        access = request_access(request)
        if access.workspace is not None and access.has(MANAGE_MEMBERS):
            mine |= Q(workspace_id=access.workspace.pk)
        return qs.filter(mine)

    def _may_manage(self, request: HttpRequest, obj: ApiKey | None) -> bool:
        if not (request.user.is_active and request.user.is_staff):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request, None)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request, None) and (
            user_is_operator(request.user) or workspaces_of(request.user).exists()
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoked keys stay, so the audit trail and last-used dates keep their meaning.
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "workspace", "expiry_date"]
        return [
            "prefix", "name", "user", "workspace", "created", "expiry_date", "last_used_at",
            "revoked",
        ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        fixed = ["prefix", "user", "workspace", "created", "expiry_date", "last_used_at"]
        return [*fixed, "name", "revoked"] if obj.revoked else fixed

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "workspace":
            # A key acts as its user: only in a workspace they belong to; install-wide keys
            # (no workspace) are for operators.
            kwargs["queryset"] = workspaces_of(request.user).order_by("name", "pk")
            kwargs["initial"] = request_workspace(request)
            kwargs["required"] = not user_is_operator(request.user)
            kwargs["empty_label"] = _("(none: install-wide, operators only)")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        access = request_access(request)
        if not change:
            try:
                row, key = api_key_issue(
                    access=access,
                    user=request.user,
                    workspace=form.cleaned_data.get("workspace"),
                    name=form.cleaned_data["name"],
                    expires_at=form.cleaned_data.get("expiry_date"),
                )
            except TenancyError as exc:
                raise PermissionDenied(str(exc.detail)) from None
            obj.pk, obj.prefix, obj.user, obj.workspace = (
                row.pk,
                row.prefix,
                row.user,
                row.workspace,
            )
            self.message_user(
                request,
                format_html(
                    "{} <code>{}</code>",
                    _(
                        "API key %(name)s: copy it now, it is stored hashed and will not be "
                        "shown again:"
                    )
                    % {"name": row.name},
                    key,
                ),
                messages.WARNING,
            )
            return
        if "revoked" in form.changed_data and obj.revoked:
            api_key_revoke(access=access, api_key=obj)
        if "name" in form.changed_data:
            ApiKey.objects.filter(pk=obj.pk).update(name=obj.name)

    @admin.action(description=gettext_lazy("Revoke the selected API keys"), permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        access = request_access(request)
        revoked = sum(
            api_key_revoke(access=access, api_key=key)
            for key in queryset.select_related("workspace")
        )
        self.message_user(request, _("%(n)d API key(s) revoked.") % {"n": revoked})


# --- Audit trail ----------------------------------------------------------------------------------

_CSV_COLUMNS = (
    "at", "workspace", "actor", "action", "outcome", "target_type", "target_id", "detail",
)  # fmt: skip


class _Echo:
    def write(self, value: str) -> str:
        return value


def _audit_csv_rows(rows: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(_CSV_COLUMNS)
    for row in rows:
        # Actor labels, targets and details hold what people typed: neutralised for spreadsheets.
        yield writer.writerow(
            spreadsheet_row_neutralise(
                row=[
                    row.at.isoformat(),
                    row.workspace.slug if row.workspace else "",
                    row.actor_label,
                    row.action,
                    row.outcome,
                    row.target_type,
                    row.target_id,
                    json.dumps(row.detail, sort_keys=True, ensure_ascii=False),
                ]
            )
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for everyone (the database refuses changes anyway). Roles holding
    continuity.view_auditevent see their workspace's rows; operators the install-wide ones."""

    list_display = [
        "at", "workspace", "actor_label", "action", "outcome", "target_type", "target_id",
        "detail",
    ]  # fmt: skip
    list_filter = ["outcome", "action"]
    search_fields = ["actor_label", "action", "target_id"]
    date_hierarchy = "at"
    list_select_related = ["workspace"]
    actions = ["export_csv"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        qs = super().get_queryset(request)
        user: Any = request.user
        if user.is_active and user.is_superuser:
            return qs
        visible = Q(pk__in=[])
        workspace = request_workspace(request)
        if workspace is not None and request_access(request).has(VIEW_AUDIT):
            visible |= Q(workspace_id=workspace.pk)
        if user_is_operator(user):
            visible |= Q(workspace__isnull=True)
        return qs.filter(visible)

    def get_list_filter(self, request: HttpRequest) -> Any:
        # Only a superuser's list spans workspaces; a filter would name every one to others.
        if request.user.is_superuser:
            return [*self.list_filter, "workspace"]
        return self.list_filter

    def _may_view(self, request: HttpRequest) -> bool:
        user: Any = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser or user_is_operator(user):
            return True
        return request_workspace(request) is not None and request_access(request).has(VIEW_AUDIT)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_view(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not self.get_queryset(request).filter(pk=obj.pk).exists():
            return False
        return self._may_view(request)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="continuity_auditevent_export",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        query = request.GET.urlencode()
        export_url = reverse("admin:continuity_auditevent_export") + (f"?{query}" if query else "")
        return super().changelist_view(request, {**(extra_context or {}), "export_url": export_url})

    def _export(self, request: HttpRequest, rows: QuerySet[AuditEvent]) -> StreamingHttpResponse:
        # The rows as they stand now: not the export's own audit row, written next.
        newest = AuditEvent.objects.aggregate(newest=Max("pk"))["newest"] or 0
        rows = rows.filter(pk__lte=newest)
        audit_record(
            access=request_access(request),
            action="audit.export",
            workspace=request_workspace(request),
            detail={"rows": rows.count()},
        )
        response = StreamingHttpResponse(
            _audit_csv_rows(rows.select_related("workspace").iterator(chunk_size=2000)),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response

    def export_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        """The changelist's rows, with its filters and search, as CSV."""
        if not self._may_view(request):
            return _refused(request, VIEW_AUDIT)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(_("Unknown filter."))
        return self._export(request, changelist.queryset)

    @admin.action(
        description=gettext_lazy("Export the selected events as CSV"), permissions=["view"]
    )
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent]
    ) -> StreamingHttpResponse:
        return self._export(request, queryset)


# The privacy pages (retention and records of processing) register themselves.
from continuity import admin_privacy  # noqa: E402, F401
