"""The one API error shape: {"error": code, "detail": ...}."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework.fields import CharField
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
    """Who the token belongs to: lets an integrator check a token before real calls."""

    @extend_schema(responses={200: inline_serializer("Me", {"username": CharField()})})
    def get(self, request: Request) -> Response:
        return Response({"username": request.user.get_username()})
