"""/api/v1/outages/: list, declare and resolve outage windows (thin views over windows.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from outages.impact import outage_impact_count
from outages.models import OutageWindow, WindowState
from outages.networks import network_choices, network_is_known
from outages.windows import outage_declare, outage_resolve


class OutageOut(serializers.ModelSerializer):
    network_display = serializers.CharField(source="get_network_display")

    class Meta:
        model = OutageWindow
        fields = [
            "id", "network", "network_display", "state", "opened_at", "closed_at", "opened_by",
            "opened_by_ref", "reason", "closed_by", "close_reason", "reopen_count",
        ]  # fmt: skip


class DeclareIn(serializers.Serializer):
    network = serializers.CharField(max_length=32)
    reason = serializers.CharField(max_length=2000)

    def validate_network(self, value: str) -> str:
        if not network_is_known(value):
            known = ", ".join(v for v, _ in network_choices())
            raise serializers.ValidationError(f"unknown network {value!r}; one of: {known}")
        return value


class ResolveIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def _require_perm(request: Request, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"needs the {perm} permission")


class OutageListView(APIView):
    @extend_schema(responses={200: OutageOut(many=True)})
    def get(self, request: Request) -> Response:
        rows = OutageWindow.objects.all().order_by("-opened_at")
        state = request.query_params.get("state")
        if state:
            if state not in WindowState.values:
                return Response(
                    {
                        "error": "invalid",
                        "detail": {"state": f"must be one of {WindowState.values}"},
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
            rows = rows.filter(state=state)
        network = request.query_params.get("network")
        if network:
            rows = rows.filter(network=network)
        return Response(OutageOut(rows[:500], many=True).data)

    @extend_schema(request=DeclareIn, responses={201: OutageOut})
    def post(self, request: Request) -> Response:
        _require_perm(request, "outages.add_outagewindow")
        data = DeclareIn(data=request.data)
        data.is_valid(raise_exception=True)
        window = outage_declare(
            network=data.validated_data["network"],
            reason=data.validated_data["reason"],
            actor=request.user.get_username(),
        )
        body: dict[str, Any] = dict(OutageOut(window).data)
        body["campaigns_touched"] = outage_impact_count(network=window.network)
        return Response(body, status=status.HTTP_201_CREATED)


class OutageDetailView(APIView):
    @extend_schema(responses={200: OutageOut})
    def get(self, request: Request, pk: int) -> Response:
        window = OutageWindow.objects.filter(pk=pk).first()
        if window is None:
            raise NotFound(f"no outage {pk}")
        return Response(OutageOut(window).data)


class OutageResolveView(APIView):
    @extend_schema(request=ResolveIn, responses={200: OutageOut})
    def post(self, request: Request, pk: int) -> Response:
        _require_perm(request, "outages.change_outagewindow")
        data = ResolveIn(data=request.data)
        data.is_valid(raise_exception=True)
        window = OutageWindow.objects.filter(pk=pk).first()
        if window is None:
            raise NotFound(f"no outage {pk}")
        window = outage_resolve(
            window=window, reason=data.validated_data["reason"], actor=request.user.get_username()
        )
        return Response(OutageOut(window).data)
