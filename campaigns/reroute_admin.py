"""Admin for the reroute engine: reroutes, per-window reports, the live dashboard and the drill.

Kept apart from campaigns/admin.py (campaign editing) and registered from CampaignsConfig.ready.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from campaigns.drill import outage_drill
from campaigns.models import Reroute
from campaigns.reports import (
    COLUMNS,
    SENT,
    sends_per_minute_svg,
    window_report,
    window_report_csv,
)
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from outages.models import OutageWindow
from outages.networks import network_choices


def channel_progress(message_id: int | None) -> list[dict[str, Any]]:
    """Sent / total per channel of one message, for progress bars, and how many rows wait.

    `waiting` is read from the rows (queued, not before a later time), so quiet hours applied at
    send time show up as well as those applied when the reroute was planned.
    """
    if not message_id:
        return []
    rows = (
        Delivery.objects.filter(message_id=message_id)
        .values("channel")
        .annotate(
            total=Count("id"),
            sent=Count("id", filter=Q(status__in=SENT)),
            waiting=Count("id", filter=Q(status=S.QUEUED, not_before__gt=timezone.now())),
        )
        .order_by("channel")
    )
    return [
        {**row, "percent": round(100 * row["sent"] / row["total"]) if row["total"] else 0}
        for row in rows
    ]


class DrillForm(forms.Form):
    network = forms.ChoiceField(choices=network_choices)


class RerouteAdmin(admin.ModelAdmin):
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

    @admin.display(description="window")
    def window_link(self, obj: Reroute) -> str:
        return format_html(
            '<a href="report/{}/">#{} {} ({})</a>',
            obj.window_id,
            obj.window_id,
            obj.window.network,
            obj.window.state,
        )

    @admin.display(description="sent / planned")
    def progress(self, obj: Reroute) -> str:
        bars = [
            format_html(
                '<div title="{} {}/{}"><progress max="{}" value="{}"></progress> {} {}/{}</div>',
                p["channel"],
                p["sent"],
                p["total"],
                p["total"],
                p["sent"],
                p["channel"],
                p["sent"],
                p["total"],
            )
            for p in channel_progress(obj.campaign.message_id)
        ]
        return mark_safe("".join(bars)) if bars else "-"  # noqa: S308 - built with format_html

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
        ]
        return own + super().get_urls()

    def dashboard(self, request: HttpRequest) -> HttpResponse:
        windows = []
        for window in OutageWindow.objects.filter(state="open").order_by("opened_at"):
            reroutes = Reroute.objects.filter(window=window).select_related("campaign")
            windows.append(
                {
                    "window": window,
                    "reroutes": [
                        {"reroute": r, "progress": channel_progress(r.campaign.message_id)}
                        for r in reroutes
                    ],
                }
            )
        recent = OutageWindow.objects.filter(state="resolved").order_by("-closed_at")[:10]
        context = {
            **self.admin_site.each_context(request),
            "title": "Outages and reroutes",
            "windows": windows,
            "recent": recent,
        }
        return TemplateResponse(request, "admin/campaigns/reroute/dashboard.html", context)

    def report(self, request: HttpRequest, window_id: int) -> HttpResponse:
        report = window_report(window_id=window_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Outage report: window #{window_id} ({report.network})",
            "report": report,
            "columns": COLUMNS,
            "rows": [(ch, [counts[c] for c in COLUMNS]) for ch, counts in report.channels.items()],
            "chart": mark_safe(sends_per_minute_svg(report)),  # noqa: S308 - escaped inside
        }
        return TemplateResponse(request, "admin/campaigns/reroute/report.html", context)

    def report_csv(self, request: HttpRequest, window_id: int) -> HttpResponse:
        report = window_report(window_id=window_id)
        response = HttpResponse(window_report_csv(report), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="outage-{window_id}.csv"'
        return response

    def drill(self, request: HttpRequest) -> HttpResponse:
        form = DrillForm(request.POST or request.GET or None)
        result = None
        if form.is_valid():
            campaign_ids = [int(i) for i in request.GET.getlist("campaign") if i.isdigit()] or None
            result = outage_drill(network=form.cleaned_data["network"], campaign_ids=campaign_ids)
        context = {
            **self.admin_site.each_context(request),
            "title": "Outage drill: what would happen if a network went down now",
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/campaigns/reroute/drill.html", context)


admin.site.register(Reroute, RerouteAdmin)
