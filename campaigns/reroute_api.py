"""API for the reroute engine: reroutes, per-window reports (JSON or CSV) and the drill."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.drill import outage_drill
from campaigns.models import Reroute
from campaigns.reports import window_report, window_report_csv
from outages.models import OutageWindow
from outages.networks import network_is_known


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


class RerouteListView(APIView):
    @extend_schema(
        responses=RerouteOut(many=True),
        parameters=[OpenApiParameter("window", int), OpenApiParameter("campaign", int)],
    )
    def get(self, request: Request) -> Response:
        reroutes = Reroute.objects.order_by("-id")
        for name in ("window", "campaign"):
            value = request.query_params.get(name)
            if value is not None:
                if not value.isdigit():
                    raise serializers.ValidationError({name: "must be a whole number"})
                reroutes = reroutes.filter(**{f"{name}_id": int(value)})
        return Response(RerouteOut(reroutes[:500], many=True).data)


class WindowReportView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "export", str, enum=["csv"], description="csv: download the report as CSV"
            )
        ],
        responses={200: dict},
    )
    def get(self, request: Request, window_id: int) -> Any:
        get_object_or_404(OutageWindow, pk=window_id)
        report = window_report(window_id=window_id)
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


class DrillIn(serializers.Serializer):
    network = serializers.CharField()
    campaign_ids = serializers.ListField(child=serializers.IntegerField(), required=False)

    def validate_network(self, value: str) -> str:
        if not network_is_known(value):
            raise serializers.ValidationError(f"unknown network {value!r}")
        return value


class DrillView(APIView):
    @extend_schema(request=DrillIn, responses={200: dict})
    def post(self, request: Request) -> Response:
        incoming = DrillIn(data=request.data)
        incoming.is_valid(raise_exception=True)
        report = outage_drill(
            network=incoming.validated_data["network"],
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
