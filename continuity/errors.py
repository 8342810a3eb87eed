"""Tenancy's domain errors (workspaces, memberships, API keys), mapped once to the API error
shape by continuity.api."""

from __future__ import annotations

from continuity.api import ContinuityError


class TenancyError(ContinuityError):
    code = "tenancy_error"
    status_code = 400


class WorkspaceSlugTaken(TenancyError):
    code = "workspace_slug_taken"
    status_code = 409


class LastOwner(TenancyError):
    code = "last_owner"
    status_code = 409


class NotAMember(TenancyError):
    code = "not_a_member"
    status_code = 403
