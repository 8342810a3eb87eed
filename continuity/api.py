"""The one API error shape: {"error": code, "detail": ...}."""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.fields import BooleanField, CharField, ListField
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


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "object", "additionalProperties": True},
            {"type": "array", "items": {}},
        ]
    }
)
class ErrorDetailField(serializers.JSONField):
    """What went wrong: a sentence, an object of field -> messages, or a list of problems."""


class ErrorOut(serializers.Serializer[Any]):
    """The body of every 4xx answer (``exception_handler`` below); the OpenAPI schema documents
    it on every operation (continuity.api_schema)."""

    error = serializers.CharField(
        help_text=gettext_lazy("A stable code, such as invalid_contact or not_found.")
    )
    detail = ErrorDetailField(
        help_text=gettext_lazy(
            "The reason: a sentence, an object naming each wrong field, or a list."
        )
    )


API_PREFIX = "/api/"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ContinuityError):
        return Response({"error": exc.code, "detail": exc.detail}, status=exc.status_code)
    if isinstance(exc, SuspiciousOperation):
        # Django's own refusals while DRF reads the body (too many form fields or files, a body
        # over DATA_UPLOAD_MAX_MEMORY_SIZE): left alone they become Django's HTML error page.
        if isinstance(exc, RequestDataTooBig):
            return Response({"error": "body_too_large", "detail": str(exc)}, status=413)
        return Response({"error": "malformed_request", "detail": str(exc)}, status=400)
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
    """Who the key belongs to, where it acts and what it may do: lets an integrator check a key
    before real calls. Any signed-in caller may ask; a key whose user left its workspace is 401."""

    # Declared like every view (continuity/api_auth.py); install-wide so that an operator's key
    # without a workspace may ask too. The workspace is resolved in get().
    install_wide = True
    permission_map: ClassVar[dict[str, str]] = {"GET": "*"}  # ANY_MEMBER (api_auth)

    @extend_schema(
        responses={
            200: inline_serializer(
                "Me",
                {
                    "username": CharField(),
                    "workspace": CharField(allow_null=True),
                    "workspace_name": CharField(allow_null=True),
                    "role": CharField(allow_null=True),
                    "permissions": ListField(child=CharField()),
                    "operator": BooleanField(),
                    "install_permissions": ListField(child=CharField()),
                },
            )
        }
    )
    def get(self, request: Request) -> Response:
        from continuity.api_auth import request_workspace
        from continuity.roles import OPERATOR_PERMISSIONS, user_is_operator
        from continuity.tenancy import access_for

        workspace = request_workspace(request)
        access = None
        if workspace is not None:
            try:
                access = access_for(request.user, workspace)
            except Http404:
                raise AuthenticationFailed(_("Not a member of this workspace.")) from None
        operator = user_is_operator(request.user)
        return Response(
            {
                "username": request.user.get_username(),
                "workspace": workspace.slug if workspace is not None else None,
                "workspace_name": workspace.name if workspace is not None else None,
                "role": access.role if access is not None else None,
                "permissions": sorted(access.permissions) if access is not None else [],
                "operator": operator,
                "install_permissions": sorted(
                    p for p in OPERATOR_PERMISSIONS if request.user.has_perm(p)
                ),
            }
        )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a path under /api/ that names no route (``/contacts/abc/``) answers in the
    API's error shape, like every other API refusal; pages keep Django's own 404 page."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"error": "not_found", "detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)
