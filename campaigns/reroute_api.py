"""API for the reroute engine: reroutes, per-window reports (JSON or CSV) and the drill.

A workspace's key sees only its workspace's reroutes and report (the window itself is an
install-wide fact); operators get counts per workspace, without names or contacts.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.drill import outage_drill
from campaigns.models import Campaign, Reroute
from campaigns.reports import window_counts_by_workspace, window_report, window_report_csv
from campaigns.selectors import reroutes_of
from continuity.api_access import InstallAPIView, WorkspaceAPIView
from outages.models import OutageWindow
from outages.networks import network_is_known

_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


class RerouteOut(serializers.ModelSerializer):
    class Meta:
        model = Reroute
        fields = (
            "id",
            "campaign",
            "network",
            "window",
            "status",
            "policy",
            "send_after",
            "planned",
            "exclusions",
            "sms_segments_planned",
            "signal_at",
            "created_at",
            "finished_at",
        )


class RerouteListView(WorkspaceAPIView):
    permission_map = {"GET": "campaigns.view_reroute"}

    @extend_schema(
        responses=RerouteOut(many=True),
        parameters=[OpenApiParameter("window", int), OpenApiParameter("campaign", int)],
    )
    def get(self, request: Request) -> Response:
        reroutes = reroutes_of(workspace=self.workspace).order_by("-id")
        for name in ("window", "campaign"):
            value = request.query_params.get(name)
            if value is not None:
                # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
                if not _WHOLE_NUMBER.fullmatch(value):
                    raise serializers.ValidationError({name: _("must be a whole number")})
                reroutes = reroutes.filter(**{f"{name}_id": int(value)})
        return Response(RerouteOut(reroutes[:500], many=True).data)


class WindowReportView(WorkspaceAPIView):
    permission_map = {"GET": "campaigns.view_reroute"}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "export", str, enum=["csv"], description="csv: download the report as CSV"
            )
        ],
        responses={(200, "application/json"): dict, (200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request, window_id: int) -> Any:
        get_object_or_404(OutageWindow, pk=window_id)
        report = window_report(window_id=window_id, workspace=self.workspace)
        if request.query_params.get("export") == "csv":
            response = HttpResponse(window_report_csv(report), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="outage-{window_id}.csv"'
            return response
        data = asdict(report)
        data["per_minute"] = {
            channel: [{"minute": m.isoformat(), "sent": n} for m, n in points]
            for channel, points in report.per_minute.items()
        }
        return Response(data)


class WindowWorkspacesView(InstallAPIView):
    """Operators: what the window did in each workspace, as counts (no names, no contacts)."""

    permission_map = {"GET": "outages.view_outagewindow"}

    @extend_schema(responses={200: dict})
    def get(self, request: Request, window_id: int) -> Response:
        get_object_or_404(OutageWindow, pk=window_id)
        rows = window_counts_by_workspace(window_id=window_id)
        return Response({"window_id": window_id, "workspaces": [asdict(r) for r in rows]})


class DrillIn(serializers.Serializer):
    network = serializers.CharField()
    campaign_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=1000,
    )

    def validate_network(self, value: str) -> str:
        if not network_is_known(value):
            raise serializers.ValidationError(_("unknown network %(network)r") % {"network": value})
        return value

    def validate_campaign_ids(self, value: list[int]) -> list[int]:
        workspace = self.context["workspace"]
        known = set(
            Campaign.objects.for_workspace(workspace)
            .filter(pk__in=value)
            .values_list("pk", flat=True)
        )
        # Another workspace's campaign reads as one that does not exist: never drilled.
        unknown = sorted(set(value) - known)
        if unknown:
            raise serializers.ValidationError(
                _("no campaign %(ids)s in this workspace")
                % {"ids": ", ".join(f"#{pk}" for pk in unknown)}
            )
        return value


class DrillView(WorkspaceAPIView):
    permission_map = {"POST": "campaigns.run_drill"}

    @extend_schema(request=DrillIn, responses={200: dict})
    def post(self, request: Request) -> Response:
        incoming = DrillIn(data=request.data, context={"workspace": self.workspace})
        incoming.is_valid(raise_exception=True)
        report = outage_drill(
            network=incoming.validated_data["network"],
            workspace=self.workspace,
            campaign_ids=incoming.validated_data.get("campaign_ids"),
        )
        return Response(
            {
                "network": report.network,
                "planned": report.planned,
                "exclusions": report.exclusions,
                "sms_segments": report.sms_segments,
                "sms_cost": report.sms_cost,
                "campaigns": [asdict(d) for d in report.campaigns],
            }
        )
