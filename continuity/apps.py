from typing import Any

from django.apps import AppConfig
from django.core.checks import Tags, register
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ContinuityConfig(AppConfig):
    """Operational plumbing (health, heartbeats, preflight) and tenancy: workspaces, roles, API
    keys and the audit trail. No campaign logic lives here."""

    name = "continuity"
    verbose_name = _("Operations")

    def ready(self) -> None:
        # `sql` registers the `any_of` lookup on every field before any query is built;
        # `api_schema` describes ApiKeyAuthentication to the OpenAPI schema (on import).
        from continuity import api_schema, sql  # noqa: F401

        post_migrate.connect(_roles_sync, sender=self)
        # Missing or sandbox-valued secrets outside the sandbox fail `check --deploy` (and every
        # production start, which runs the same checks: continuity/checks.py).
        from continuity.checks import secrets_check

        register(secrets_check, Tags.security, "deploy", deploy=True)


def _roles_sync(sender: AppConfig, **kwargs: Any) -> None:
    # After every migrate, role groups match continuity/roles.py. Django creates each app's
    # permissions in that app's own post_migrate, and apps listed after this one have not had
    # theirs yet: creating them here first (it is idempotent) lets the sync see every one.
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    from continuity.roles import roles_sync

    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    roles_sync()
