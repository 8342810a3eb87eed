"""continuity.api_schema.AutoSchema documents the 4xx answers from what a view does."""

from __future__ import annotations

from typing import Any, ClassVar

from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from continuity.api_access import WorkspaceAPIView


class ThrottledView(WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {"GET": "*"}
    throttle_classes = [AnonRateThrottle]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({})


class PlainView(WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {"GET": "*"}

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        return Response({})


def _responses(view: Any, route: str) -> dict[str, Any]:
    document = SchemaGenerator(patterns=[path(route, view.as_view())]).get_schema(
        request=None, public=True
    )
    (operations,) = document["paths"].values()
    responses: dict[str, Any] = operations["get"]["responses"]
    return responses


def test_a_throttled_view_documents_429_and_an_object_path_404() -> None:
    throttled = _responses(ThrottledView, "throttled/")
    assert {"400", "401", "403", "429"} <= set(throttled)
    assert "404" not in throttled
    plain = _responses(PlainView, "plain/<int:pk>/")
    assert {"400", "401", "403", "404"} <= set(plain)
    assert "429" not in plain
