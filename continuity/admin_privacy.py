"""The privacy officer's pages for the session's workspace: what is kept and for how long (with
the rows due for deletion now), and the records of processing (GDPR Art. 30), downloadable.

Both hang off the RetentionPolicy admin: its changelist URL is the retention page. Reading needs
``continuity.view_retentionpolicy``, changing periods ``continuity.change_retentionpolicy``, the
records ``continuity.view_processing_records`` (the privacy role and owners). Every refusal is
audited; every change of a period is audited with the old and new values.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _

from continuity.admin_access import WorkspaceScopedAdmin, request_access
from continuity.audit import audit_denied, audit_record
from continuity.models import RetentionPolicy
from continuity.records import records_csv, records_json, records_of_processing
from continuity.retention import (
    retention_kinds,
    retention_overview,
    retention_period_set,
    retention_period_validate,
    retention_periods,
    retention_progress,
)
from continuity.tenancy import Access, MissingPermission

VIEW = "continuity.view_retentionpolicy"
CHANGE = "continuity.change_retentionpolicy"
RECORDS = "continuity.view_processing_records"
AUDIT_RETENTION_CHANGE = "retention.change"
AUDIT_RECORDS_DOWNLOAD = "records.download"


class PeriodsForm(forms.Form):
    """One box per kind the workspace may set; empty keeps the install's default."""

    def __init__(self, *args: Any, current: dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kinds = {k.key: k for k in retention_kinds() if k.per_workspace}
        for key, kind in self.kinds.items():
            self.fields[key] = forms.IntegerField(
                label=str(kind.label),
                required=False,
                min_value=1,
                max_value=36_500,
                initial=current.get(key),
                help_text=_("At least %(minimum)s days. Empty: the install's %(default)s days.")
                % {"minimum": kind.minimum_days, "default": kind.default_days},
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for key, kind in self.kinds.items():
            days = data.get(key)
            if days is None:
                continue
            try:
                retention_period_validate(kind=kind, days=days)
            except ValidationError as exc:
                self.add_error(key, exc)
        return data


class RetentionAdmin(WorkspaceScopedAdmin):
    """One page per workspace: the changelist URL is the retention page."""

    def _allowed(self, request: HttpRequest, perm: str) -> bool:
        access = request_access(request)
        return access.workspace is not None and access.has(perm)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, VIEW)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, CHANGE)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.retention_view), name="{}_{}_changelist".format(*info)),
            path("records/", wrap(self.records_view), name="{}_{}_records".format(*info)),
            path(
                "records/download/",
                wrap(self.records_download),
                name="{}_{}_records_download".format(*info),
            ),
        ]

    def _require(self, request: HttpRequest, perm: str, action: str) -> Access:
        access = request_access(request)
        access.workspace_required  # noqa: B018 - raises PermissionDenied without a workspace
        if not access.has(perm):
            audit_denied(access=access, action=action, perm=perm)
            raise MissingPermission(perm)
        return access

    def retention_view(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD", "POST"):
            raise PermissionDenied
        posting = request.method == "POST"
        access = self._require(
            request,
            CHANGE if posting else VIEW,
            AUDIT_RETENTION_CHANGE if posting else "retention.view",
        )
        workspace = access.workspace_required
        current = {p.kind.key: p.days for p in retention_periods(workspace=workspace) if p.own}
        form = PeriodsForm(request.POST if posting else None, current=current)
        if posting and form.is_valid():
            wanted = {key: form.cleaned_data.get(key) for key in form.kinds}
            changed = {key: days for key, days in wanted.items() if current.get(key) != days}
            if changed:
                with transaction.atomic():
                    for key, days in changed.items():
                        retention_period_set(workspace=workspace, kind_key=key, days=days)
                    audit_record(
                        access=access,
                        action=AUDIT_RETENTION_CHANGE,
                        detail={
                            key: {"from": current.get(key), "to": days}
                            for key, days in changed.items()
                        },
                    )
                self.message_user(request, _("Retention periods saved."), messages.SUCCESS)
            else:
                self.message_user(request, _("Nothing changed."), messages.INFO)
            return HttpResponseRedirect(request.path)
        progress = retention_progress()
        rows = [
            {
                "overview": row,
                "field": form[row.period.kind.key] if row.period.kind.per_workspace else None,
                "progress": progress.get(row.period.kind.key),
            }
            for row in retention_overview(workspace=workspace)
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Retention of %(workspace)s") % {"workspace": workspace.name},
            "rows": rows,
            "form": form,
            "can_change": access.has(CHANGE),
            "can_see_records": access.has(RECORDS),
            "records_url": reverse("admin:continuity_retentionpolicy_records"),
        }
        return TemplateResponse(request, "admin/continuity/retentionpolicy/retention.html", context)

    def records_view(self, request: HttpRequest) -> HttpResponse:
        access = self._require(request, RECORDS, "records.view")
        workspace = access.workspace_required
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Records of processing of %(workspace)s") % {"workspace": workspace.name},
            "record": records_of_processing(workspace=workspace),
            "download_url": reverse("admin:continuity_retentionpolicy_records_download"),
        }
        return TemplateResponse(request, "admin/continuity/retentionpolicy/records.html", context)

    def records_download(self, request: HttpRequest) -> HttpResponse:
        access = self._require(request, RECORDS, AUDIT_RECORDS_DOWNLOAD)
        workspace = access.workspace_required
        kind = request.GET.get("format", "json")
        if kind not in ("json", "csv"):
            return HttpResponse(
                _("Choose format=json or format=csv."), status=400, content_type="text/plain"
            )
        record = records_of_processing(workspace=workspace)
        audit_record(access=access, action=AUDIT_RECORDS_DOWNLOAD, detail={"format": kind})
        body, content_type = (
            (records_csv(record), "text/csv; charset=utf-8")
            if kind == "csv"
            else (records_json(record), "application/json")
        )
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="records-of-processing-{workspace.slug}.{kind}"'
        )
        return response


admin.site.register(RetentionPolicy, RetentionAdmin)
