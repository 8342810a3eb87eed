"""The OpenAPI schema's description of our API keys (drf-spectacular finds it once imported,
which ContinuityConfig.ready does)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "continuity.api_auth.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        definition: dict[str, Any] = build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - a scheme name, no secret  # nosec B106
        )
        definition["description"] = (
            "An API key from `manage.py api_token_create` or the admin's API keys page: one "
            "user acting in one workspace."
        )
        return definition
