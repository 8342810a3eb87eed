"""How the OpenAPI schema describes the API beyond what drf-spectacular infers: the API keys
(drf-spectacular finds the extension once imported, which ContinuityConfig.ready does) and the
4xx answers every operation can give, all in the one error shape of continuity.api."""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse

from continuity.api import ErrorOut


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "continuity.api_auth.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        definition: dict[str, Any] = build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - a scheme name, no secret  # nosec B106
        )
        definition["description"] = _(
            "An API key from `manage.py api_token_create` or the admin's API keys page: one "
            "user acting in one workspace."
        )
        return definition


# The refusals every authenticated operation can give, whatever the view: DRF parses the
# request and the permission class (continuity.api_auth) checks the key and the role first.
COMMON_ERRORS: dict[str, Any] = {
    "400": _("The request is malformed: the detail names each wrong field or parameter."),
    "401": _("No API key, or a malformed, unknown, expired or revoked one."),
    "403": _("The key's role lacks the permission (the detail names it)."),
}
NOT_FOUND = _("No such object in the key's workspace (another workspace's object included).")
INVALID_CURSOR = _("The cursor is not one this list handed out.")
UNSUPPORTED_MEDIA_TYPE = _("The body is in a content type the operation does not read.")
BODY_TOO_LARGE = _("The body is over the size limit (DATA_UPLOAD_MAX_MEMORY_SIZE).")
THROTTLED = _("Too many requests: retry after the Retry-After header's seconds.")


def refusal(description: str | Promise) -> OpenApiResponse:
    """A further 4xx an operation documents itself, such as a 409 for a state conflict:
    ``@extend_schema(responses={200: Out, 409: refusal(_("..."))})``."""
    return OpenApiResponse(ErrorOut, description=description)


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema plus the 4xx answers, so that a client generator (and
    Schemathesis' status code check) knows every status the API really gives. A view documents
    its own further refusals (409, 413, ...) with extend_schema; those win over these."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        errors: dict[str, Any] = dict(COMMON_ERRORS)
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        elif self.method == "GET" and getattr(self.view, "pagination_class", None) is not None:
            # DRF's cursor pagination answers an unknown cursor with 404, not 400.
            errors["404"] = INVALID_CURSOR
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors["413"] = BODY_TOO_LARGE
            errors["415"] = UNSUPPORTED_MEDIA_TYPE
        if self.view.get_throttles():
            errors["429"] = THROTTLED
        for code, description in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    refusal(description), code, direction=direction
                )
        return responses
