"""Admin for the reroute engine: reroutes, per-window reports, the live dashboard and the drill.

Kept apart from campaigns/admin.py (campaign editing) and registered from CampaignsConfig.ready.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.dashboard import (
    campaigns_at_risk,
    channel_progress_many,
    networks_in_trouble,
    reroute_rows,
)
from campaigns.drill import drill_run_request
from campaigns.engagement import campaign_engagement
from campaigns.models import Campaign, Reroute
from campaigns.report_labels import LEFT_OUT_NOW_LABELS
from campaigns.reports import (
    WorkspaceWindowCounts,
    sends_per_minute_svg,
    window_contacts_csv,
    window_counts_by_workspace,
    window_report,
    window_report_csv,
)
from continuity.admin_access import WorkspaceScopedAdmin, admin_view_require, request_access
from continuity.models import Workspace
from outages.models import OutageWindow
from outages.networks import network_choices

VIEW_REROUTE = "campaigns.view_reroute"
VIEW_CAMPAIGN = "campaigns.view_campaign"
RUN_DRILL = "campaigns.run_drill"
# Operators see what an outage did in each workspace as counts (no names, no contacts).
OPERATOR_VIEW = "outages.view_outagewindow"


def _report_scope(request: HttpRequest) -> tuple[Workspace | None, bool]:
    """(the workspace whose reroutes the page shows, whether counts per workspace are shown).

    A member needs campaigns.view_reroute in the session's workspace; an operator without one
    (or without that right) still gets the counts. Anyone else: 403 naming the permission."""
    operator = request.user.has_perm(OPERATOR_VIEW)
    access = request_access(request)
    if access.workspace is not None and access.has(VIEW_REROUTE):
        return access.workspace, operator
    if operator:
        return None, True
    admin_view_require(request, VIEW_REROUTE)  # raises: 403 naming the permission
    return None, False  # pragma: no cover - admin_view_require raised


class DrillForm(forms.Form):
    network = forms.ChoiceField(label=gettext_lazy("network"), choices=network_choices)


class RerouteAdmin(WorkspaceScopedAdmin):
    list_display = (
        "campaign",
        "network",
        "window_link",
        "policy",
        "status",
        "progress",
        "created_at",
    )
    list_filter = ("status", "policy", "network")
    list_select_related = ("campaign", "window")
    readonly_fields = [f.name for f in Reroute._meta.fields]
    change_list_template = "admin/campaigns/reroute/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("outage"))
    def window_link(self, obj: Reroute) -> str:
        return format_html(
            '<a href="report/{}/">#{} {} ({})</a>',
            obj.window_id,
            obj.window_id,
            obj.window.get_network_display(),
            obj.window.get_state_display(),
        )

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        # The page's progress bars in one grouped query, not one per row.
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        many = channel_progress_many(
            sorted({r.campaign.message_id for r in rows if r.campaign.message_id})
        )
        for row in rows:
            row.page_progress = many.get(row.campaign.message_id, [])
        return changelist

    @admin.display(description=gettext_lazy("sent / planned"))
    def progress(self, obj: Reroute) -> str:
        bars = [
            format_html(
                '<div><progress max="{}" value="{}"></progress> {} {}/{}</div>',
                p["total"],
                p["sent"],
                p["label"],
                p["sent"],
                p["total"],
            )
            # Set for the page by get_changelist_instance, the only place that draws it.
            for p in getattr(obj, "page_progress", [])
        ]
        return mark_safe("".join(bars)) if bars else "-"  # noqa: S308 - built with format_html  # nosec

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "dashboard/", self.admin_site.admin_view(self.dashboard), name="reroute_dashboard"
            ),
            path("drill/", self.admin_site.admin_view(self.drill), name="reroute_drill"),
            path(
                "report/<int:window_id>/",
                self.admin_site.admin_view(self.report),
                name="reroute_window_report",
            ),
            path(
                "report/<int:window_id>/csv/",
                self.admin_site.admin_view(self.report_csv),
                name="reroute_window_report_csv",
            ),
            path(
                "report/<int:window_id>/contacts.csv",
                self.admin_site.admin_view(self.report_contacts_csv),
                name="reroute_window_contacts_csv",
            ),
            path(
                "engagement/<int:campaign_id>/",
                self.admin_site.admin_view(self.engagement),
                name="campaign_engagement",
            ),
        ]
        return own + super().get_urls()

    def dashboard(self, request: HttpRequest) -> HttpResponse:
        workspace, operator = _report_scope(request)
        trouble = networks_in_trouble()
        windows = [
            {
                "window": window,
                "reroutes": reroute_rows(workspace=workspace, window=window)
                if workspace is not None
                else [],
                "per_workspace": _counts(window.pk) if operator else None,
            }
            for window in OutageWindow.objects.filter(state="open").order_by("opened_at")
        ]
        recent = OutageWindow.objects.filter(state="resolved").order_by("-closed_at")[:10]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Outages and reroutes"),
            "windows": windows,
            "failing": [t for t in trouble.values() if not t.down],
            "at_risk": campaigns_at_risk(workspace=workspace, trouble=trouble)
            if workspace is not None
            else [],
            "recent": recent,
            "workspace": workspace,
        }
        return TemplateResponse(request, "admin/campaigns/reroute/dashboard.html", context)

    def report(self, request: HttpRequest, window_id: int) -> HttpResponse:
        workspace, operator = _report_scope(request)
        _window_or_404(window_id)
        report = window_report(window_id=window_id, workspace=workspace) if workspace else None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Outage report: outage #%(id)s") % {"id": window_id},
            "report": report,
            "workspace": workspace,
            "reasons_now": [str(v) for v in LEFT_OUT_NOW_LABELS.values()],
            "chart": mark_safe(sends_per_minute_svg(report)) if report else "",  # noqa: S308 - escaped inside  # nosec
            "per_workspace": _counts(window_id) if operator else None,
        }
        return TemplateResponse(request, "admin/campaigns/reroute/report.html", context)

    def report_csv(self, request: HttpRequest, window_id: int) -> HttpResponse:
        # The CSV is the workspace's own report: operators read the counts on the page.
        access = admin_view_require(request, VIEW_REROUTE)
        _window_or_404(window_id)
        report = window_report(window_id=window_id, workspace=access.workspace_required)
        response = HttpResponse(window_report_csv(report), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="outage-{window_id}.csv"'
        return response

    def report_contacts_csv(self, request: HttpRequest, window_id: int) -> StreamingHttpResponse:
        # Names and addresses: the workspace's own, for members who may read its contacts.
        access = admin_view_require(request, VIEW_REROUTE)
        access.require("contacts.view_contact")
        _window_or_404(window_id)
        response = StreamingHttpResponse(
            window_contacts_csv(window_id=window_id, workspace=access.workspace_required),
            content_type="text/csv",
        )
        response["Content-Disposition"] = f'attachment; filename="outage-{window_id}-contacts.csv"'
        return response

    def engagement(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        access = admin_view_require(request, VIEW_CAMPAIGN)
        # Another workspace's campaign is one that does not exist here.
        campaign = get_object_or_404(
            Campaign.objects.for_workspace(access.workspace_required), pk=campaign_id
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Engagement: %(campaign)s") % {"campaign": campaign.name},
            "campaign": campaign,
            "engagement": campaign_engagement(campaign=campaign),
        }
        return TemplateResponse(request, "admin/campaigns/engagement.html", context)

    def drill(self, request: HttpRequest) -> HttpResponse:
        access = admin_view_require(request, RUN_DRILL)
        form = DrillForm(request.POST or request.GET or None)
        run = None
        poll_url = ""
        if form.is_valid():
            # Ids of another workspace's campaigns are dropped by the drill, never drilled.
            campaign_ids = [
                int(i) for i in request.GET.getlist("campaign") if i.isdigit() and len(i) < 19
            ] or None
            # Planned by a worker (minutes for a million contacts): the page shows the last
            # report, or "running" and refreshes itself (campaigns.drill).
            run = drill_run_request(
                workspace=access.workspace_required,
                network=form.cleaned_data["network"],
                campaign_ids=campaign_ids,
                fresh=request.GET.get("fresh") == "1",
            )
            query = request.GET.copy()
            query.pop("fresh", None)
            poll_url = f"{request.path}?{query.urlencode()}"
        context = {
            **self.admin_site.each_context(request),
            "title": _("Outage drill: what would happen if a network went down now"),
            "form": form,
            "run": run,
            "result": run.report if run is not None else None,
            "poll_url": poll_url,
        }
        return TemplateResponse(request, "admin/campaigns/reroute/drill.html", context)


def _window_or_404(window_id: int) -> OutageWindow:
    window = OutageWindow.objects.filter(pk=window_id).first()
    if window is None:
        raise Http404
    return window


def _counts(window_id: int) -> list[WorkspaceWindowCounts]:
    return window_counts_by_workspace(window_id=window_id)


admin.site.register(Reroute, RerouteAdmin)
