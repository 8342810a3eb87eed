"""The one API error shape: {"error": code, "detail": ...}."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework.exceptions import NotFound
from rest_framework.fields import CharField, ListField
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler


class ContinuityError(Exception):
    """Root of the apps' domain errors; each app subclasses it and sets code and status."""

    code = "error"
    status_code = 400

    def __init__(self, detail: Any) -> None:
        super().__init__(detail)
        self.detail = detail


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ContinuityError):
        return Response({"error": exc.code, "detail": exc.detail}, status=exc.status_code)
    if isinstance(exc, Http404):
        # workspace_get_or_404 and friends: the same shape and code as DRF's own NotFound.
        exc = NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        detail = detail["detail"]
    response.data = {"error": code, "detail": detail}
    return response


class MeView(APIView):
    """Who the token belongs to, where it acts and what it may do: lets an integrator check a
    token before real calls."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={
            200: inline_serializer(
                "Me",
                {
                    "username": CharField(),
                    "workspace": CharField(allow_null=True),
                    "role": CharField(allow_null=True),
                    "permissions": ListField(child=CharField()),
                },
            )
        }
    )
    def get(self, request: Request) -> Response:
        from continuity.api_auth import request_workspace
        from continuity.tenancy import access_for

        workspace = request_workspace(request)
        access = access_for(request.user, workspace) if workspace is not None else None
        return Response(
            {
                "username": request.user.get_username(),
                "workspace": workspace.slug if workspace is not None else None,
                "role": access.role if access is not None else None,
                "permissions": sorted(access.permissions) if access is not None else [],
            }
        )
