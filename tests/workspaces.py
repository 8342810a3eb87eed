"""Workspace factories for every app's tests: one shared "tests" workspace by default, and users
with a role in a workspace for the permission tests."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from continuity.models import ApiKey, Membership, Role, Workspace

_seq = itertools.count(1)


def workspace_for_tests() -> Workspace:
    """The workspace factories use unless told otherwise (survives transactional-test flushes)."""
    workspace, _ = Workspace.objects.get_or_create(slug="tests", defaults={"name": "Tests"})
    return workspace


def make_workspace(**overrides: Any) -> Workspace:
    n = next(_seq)
    values: dict[str, Any] = {"slug": f"ws-{n}", "name": f"Workspace {n}"}
    values.update(overrides)
    return Workspace.objects.create(**values)


def make_member(*, workspace: Workspace, role: str = Role.MARKETER, **overrides: Any) -> Any:
    n = next(_seq)
    values: dict[str, Any] = {"username": f"{role}-{n}", "is_staff": True}
    values.update(overrides)
    user = get_user_model().objects.create_user(**values)
    Membership.objects.create(user=user, workspace=workspace, role=role)
    return user


def make_api_key(*, user: Any, workspace: Workspace | None, **overrides: Any) -> str:
    values: dict[str, Any] = {"name": f"key {next(_seq)}"}
    values.update(overrides)
    _key_row, key = ApiKey.objects.create_key(user=user, workspace=workspace, **values)
    return key


def bearer(key: str) -> dict[str, Any]:
    # Typed Any so that `client.get(url, **bearer(key))` type-checks against the Client's
    # keyword parameters.
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}
