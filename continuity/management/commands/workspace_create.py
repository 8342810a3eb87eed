"""`manage.py workspace_create SLUG "NAME"`: a new, empty client workspace."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug
from django.utils.translation import gettext as _

from continuity.errors import TenancyError
from continuity.workspaces import command_access, workspace_create


class Command(BaseCommand):
    help = "Create a workspace (one client business) with this slug and name."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug")
        parser.add_argument("name")

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            validate_slug(slug)
        except ValidationError:
            raise CommandError(
                _("%(slug)r is not a slug: use letters, digits, hyphens and underscores.")
                % {"slug": slug}
            ) from None
        if len(slug) > 50:
            raise CommandError(_("The slug is longer than 50 characters."))
        name = name.strip()
        if not name or len(name) > 200:
            raise CommandError(_("The name must have 1 to 200 characters."))
        try:
            workspace = workspace_create(access=command_access(), slug=slug, name=name)
        except TenancyError as exc:
            raise CommandError(str(exc.detail)) from None
        self.stdout.write(
            _("Workspace %(slug)s (%(name)s) created.") % {"slug": workspace.slug, "name": name}
        )
