"""Admin: monitor sources (secret shown once, rotation), receipts (read-only), outage windows
(declare and resolve with an "are you sure" page that counts the campaigns touched)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from outages.credentials import IssuedSecret, credential_issue, credential_rotate
from outages.errors import OutagesError
from outages.forms import DeclareOutageForm, MonitorSourceForm, ResolveOutageForm
from outages.impact import outage_impact_count
from outages.manual import install_access, outage_declare_manually, outage_resolve_manually
from outages.models import (
    MonitorSource,
    OutageSignal,
    OutageWindow,
    WebhookReceipt,
    WindowEvent,
)
from outages.networks import network_label
from outages.normalisers import KINDS

AUTH_HOWTO = {
    "bearer": gettext_lazy(
        "send header Authorization: Bearer <secret> (or Basic with the secret as password)"
    ),
    "url_token": gettext_lazy("append ?token=<secret> to the URL"),
    "hmac": gettext_lazy("sign each request with the secret (see docs/monitors.md)"),
}


def _show_secret_once(request: HttpRequest, source: MonitorSource, issued: IssuedSecret) -> None:
    url = request.build_absolute_uri(source.get_absolute_url())
    howto = AUTH_HOWTO[KINDS[source.kind].auth]
    messages.warning(
        request,
        format_html(
            _(
                "Secret for <strong>{}</strong>: <code>{}</code>. Copy it now: it is stored "
                "encrypted and will not be shown again. URL: <code>{}</code>; {}."
            ),
            source.name,
            issued.secret,
            url,
            howto,
        ),
    )


@admin.register(MonitorSource)
class MonitorSourceAdmin(admin.ModelAdmin):
    form = MonitorSourceForm
    list_display = ["name", "slug", "kind", "default_network", "active", "webhook_path"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["webhook_path", "credential_summary", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    @admin.display(description=gettext_lazy("webhook URL path"))
    def webhook_path(self, obj: MonitorSource) -> str:
        if not obj.pk:
            return _("(after saving)")
        suffix = "?token=<secret>" if KINDS[obj.kind].auth == "url_token" else ""
        return f"POST {obj.get_absolute_url()}{suffix}"

    @admin.display(description=gettext_lazy("secrets"))
    def credential_summary(self, obj: MonitorSource) -> str:
        if not obj.pk:
            return _("generated when you save")
        return format_html_join(
            "",
            _("<div>…{} created {} {}</div>"),
            (
                (
                    c.hint,
                    c.created_at.strftime("%Y-%m-%d %H:%M"),
                    _("expires %(at)s") % {"at": f"{c.expires_at:%Y-%m-%d %H:%M}"}
                    if c.expires_at
                    else _("(current)"),
                )
                for c in obj.credentials.all()
            ),
        )

    def save_model(self, request: HttpRequest, obj: MonitorSource, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        given = form.cleaned_data.get("new_secret") or None
        if not change:
            _show_secret_once(request, obj, credential_issue(source=obj, secret=given))
        elif given:
            credential_rotate(source=obj, secret=given)
            self.message_user(
                request,
                _("Secret replaced; the previous one keeps working for the overlap period."),
            )

    @admin.action(
        description=gettext_lazy("Rotate secret (old one keeps working for the overlap period)"),
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[MonitorSource]) -> None:
        for source in queryset:
            _show_secret_once(request, source, credential_rotate(source=source))


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(admin.ModelAdmin):
    list_display = ["created_at", "slug", "source", "method", "status_code", "verdict", "reason"]
    list_filter = ["verdict", "status_code", "source"]
    search_fields = ["slug", "reason", "body"]
    date_hierarchy = "created_at"
    list_select_related = ["source"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OutageSignalInline(admin.TabularInline):
    model = OutageSignal
    extra = 0
    can_delete = False
    fields = [
        "source_ref",
        "incident_key",
        "state",
        "started_at",
        "ended_at",
        "notifications",
        "summary",
        "link",
    ]
    readonly_fields = [
        "source_ref", "incident_key", "state", "started_at", "ended_at", "notifications",
        "summary", "link",
    ]  # fmt: skip
    verbose_name_plural = gettext_lazy("signals holding (or having held) this window")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WindowEventInline(admin.TabularInline):
    model = WindowEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "actor", "detail"]
    readonly_fields = ["at", "kind", "actor", "detail"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutageWindow)
class OutageWindowAdmin(admin.ModelAdmin):
    list_display = ["id", "network", "state", "opened_at", "closed_at", "opened_by", "reason"]
    list_filter = ["state", "network", "opened_by"]
    readonly_fields = [
        "network", "state", "opened_at", "closed_at", "opened_by", "opened_by_source",
        "opened_by_ref", "reason", "closed_by", "close_reason", "reopen_count",
    ]  # fmt: skip
    inlines = [OutageSignalInline, WindowEventInline]
    actions = ["resolve_outages"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """ "Add" is declaring an outage: a reason, then an "are you sure" page with the impact.
        Operators only (outages.add_outagewindow), like Django's own add view."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DeclareOutageForm(request.POST or None)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Declare an outage"),
            "form": form,
            "confirm": False,
        }
        if request.method == "POST" and form.is_valid():
            network = form.cleaned_data["network"]
            if request.POST.get("confirmed") == "yes":
                window = outage_declare_manually(
                    access=install_access(user=request.user),
                    network=network,
                    reason=form.cleaned_data["reason"],
                )
                self.message_user(
                    request, _("%(window)s is open.") % {"window": window}, messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:outages_outagewindow_change", args=[window.pk])
                )
            context.update(
                confirm=True,
                network_label=network_label(network),
                impact=outage_impact_count(network=network),
            )
        return TemplateResponse(request, "admin/outages/outagewindow/declare.html", context)

    @admin.action(description=gettext_lazy("Resolve selected outages…"), permissions=["change"])
    def resolve_outages(
        self, request: HttpRequest, queryset: QuerySet[OutageWindow]
    ) -> HttpResponse | None:
        windows = list(queryset.filter(state="open"))
        form = ResolveOutageForm(request.POST if request.POST.get("confirmed") else None)
        if request.POST.get("confirmed") == "yes" and form.is_valid():
            for window in windows:
                try:
                    outage_resolve_manually(
                        access=install_access(user=request.user),
                        window=window,
                        reason=form.cleaned_data["reason"],
                    )
                except OutagesError as exc:
                    self.message_user(request, str(exc.detail), messages.WARNING)
            self.message_user(
                request, _("Resolved %(n)d outage(s).") % {"n": len(windows)}, messages.SUCCESS
            )
            return None
        rows = [(w, outage_impact_count(network=w.network)) for w in windows]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Resolve outages"),
            "rows": rows,
            "form": form,
        }
        return TemplateResponse(request, "admin/outages/outagewindow/resolve_confirm.html", context)
