"""/api/v1/outages/: list, declare and resolve outage windows (thin views over windows.py).

Outages are install-wide: the permissions are the user's own (the Operator group), whatever
workspace a key acts in; a workspace member who is not an operator gets 403 naming the perm.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from continuity.api_access import InstallAPIView
from continuity.api_schema import refusal
from outages.impact import outage_impact_count
from outages.manual import outage_declare_manually, outage_resolve_manually
from outages.models import OutageWindow, WindowState
from outages.networks import network_choices, network_is_known

VIEW = "outages.view_outagewindow"
DECLARE = "outages.add_outagewindow"
RESOLVE = "outages.change_outagewindow"


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
            raise serializers.ValidationError(
                _("unknown network %(value)r; one of: %(known)s") % {"value": value, "known": known}
            )
        return value


class ResolveIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class OutageListView(InstallAPIView):
    permission_map: ClassVar[dict[str, str]] = {"GET": VIEW, "POST": DECLARE}

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=WindowState.values),
            OpenApiParameter(
                "network", str, description=gettext_lazy("a network's slug, such as instagram")
            ),
        ],
        responses={200: OutageOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        rows = OutageWindow.objects.all().order_by("-opened_at")
        state = request.query_params.get("state")
        if state:
            if state not in WindowState.values:
                return Response(
                    {
                        "error": "invalid",
                        "detail": {
                            "state": _("must be one of %(values)s")
                            % {"values": ", ".join(WindowState.values)}
                        },
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
        data = DeclareIn(data=request.data)
        data.is_valid(raise_exception=True)
        window = outage_declare_manually(
            access=self.access,
            network=data.validated_data["network"],
            reason=data.validated_data["reason"],
        )
        body: dict[str, Any] = dict(OutageOut(window).data)
        body["campaigns_touched"] = outage_impact_count(network=window.network)
        return Response(body, status=status.HTTP_201_CREATED)


class OutageDetailView(InstallAPIView):
    permission_map: ClassVar[dict[str, str]] = {"GET": VIEW}

    @extend_schema(responses={200: OutageOut})
    def get(self, request: Request, pk: int) -> Response:
        window = OutageWindow.objects.filter(pk=pk).first()
        if window is None:
            raise NotFound(_("no outage %(pk)s") % {"pk": pk})
        return Response(OutageOut(window).data)


class OutageResolveView(InstallAPIView):
    permission_map: ClassVar[dict[str, str]] = {"POST": RESOLVE}

    @extend_schema(
        request=ResolveIn,
        responses={200: OutageOut, 409: refusal(gettext_lazy("The outage is resolved already."))},
    )
    def post(self, request: Request, pk: int) -> Response:
        data = ResolveIn(data=request.data)
        data.is_valid(raise_exception=True)
        window = OutageWindow.objects.filter(pk=pk).first()
        if window is None:
            raise NotFound(_("no outage %(pk)s") % {"pk": pk})
        window = outage_resolve_manually(
            access=self.access, window=window, reason=data.validated_data["reason"]
        )
        return Response(OutageOut(window).data)
