"""Every row that belongs to a client carries its workspace, and uniqueness is per workspace."""

from __future__ import annotations

from django.apps import apps
from django.db import models

from continuity.models import Workspace
from continuity.tenancy import WorkspaceManager

OWNED_APPS = ("contacts", "campaigns", "delivery")
# Rows that may belong to no workspace, with why.
WORKSPACE_OPTIONAL = {
    # A webhook request whose events name no known message, or messages of several workspaces,
    # is install-level: operators see it, no workspace does.
    "delivery.ProviderReceipt",
}


def _owned_models() -> list[type[models.Model]]:
    return [
        model
        for app in OWNED_APPS
        for model in apps.get_app_config(app).get_models()
        if not model._meta.auto_created
    ]


def test_every_model_of_the_client_apps_has_a_workspace_key() -> None:
    missing = []
    for model in _owned_models():
        try:
            field = model._meta.get_field("workspace")
        except Exception:
            missing.append(f"{model._meta.label}: no workspace field")
            continue
        if not (isinstance(field, models.ForeignKey) and field.related_model is Workspace):
            missing.append(f"{model._meta.label}: workspace is not a key to Workspace")
        elif field.null != (model._meta.label in WORKSPACE_OPTIONAL):
            missing.append(f"{model._meta.label}: workspace null={field.null}")
        elif field.remote_field.on_delete is not models.PROTECT:
            missing.append(f"{model._meta.label}: deleting a workspace must not cascade")
    assert len(_owned_models()) >= 15
    assert not missing, missing


def test_every_owned_model_reads_through_the_workspace_manager() -> None:
    plain = [
        model._meta.label
        for model in _owned_models()
        if model._meta.label not in WORKSPACE_OPTIONAL
        and not isinstance(model._default_manager, WorkspaceManager)
    ]
    assert not plain, plain


def test_no_identifier_is_unique_across_workspaces() -> None:
    """A unique field or constraint of an owned model is scoped by the workspace, or by a key to
    a row that is (a contact, a campaign, a message)."""

    def scoped(fields: list[str], model: type[models.Model]) -> bool:
        for name in fields:
            field = model._meta.get_field(name)
            if name == "workspace":
                return True
            related = field.related_model if field.is_relation else None
            if (
                isinstance(related, type)
                and issubclass(related, models.Model)
                and (related._meta.app_label in OWNED_APPS)
            ):
                return True
        return False

    global_unique = []
    for model in _owned_models():
        for field in model._meta.concrete_fields:
            if field.unique and not field.primary_key and not field.is_relation:
                global_unique.append(f"{model._meta.label}.{field.name}")
        for constraint in model._meta.constraints:
            if isinstance(constraint, models.UniqueConstraint) and not scoped(
                list(constraint.fields), model
            ):
                global_unique.append(f"{model._meta.label}: {constraint.name}")
    assert not global_unique, global_unique
