"""`manage.py workspace_member_add SLUG USERNAME --role ROLE`: add a member or change a role."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from continuity.errors import TenancyError
from continuity.models import Role, Workspace
from continuity.workspaces import command_access, membership_set, user_ensure, username_clean


def username_check(username: str) -> str:
    """The username, checked by the user model's own field (CommandError when refused)."""
    try:
        return username_clean(username=username)
    except ValidationError as exc:
        raise CommandError(" ".join(exc.messages)) from None


class Command(BaseCommand):
    help = (
        "Give USERNAME the role ROLE in the workspace SLUG (creating the user, staff with an "
        "unusable password, if missing; changing the role of an existing member). Audited."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)

    def handle(self, *args: Any, slug: str, username: str, role: str, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise CommandError(_("No workspace has the slug %(slug)r.") % {"slug": slug})
        user, created = user_ensure(username=username_check(username))
        try:
            _membership, outcome = membership_set(
                access=command_access(workspace=workspace),
                workspace=workspace,
                user=user,
                role=role,
            )
        except TenancyError as exc:
            raise CommandError(str(exc.detail)) from None
        messages = {
            "added": _("%(user)s is now %(role)s of %(slug)s."),
            "changed": _("%(user)s's role in %(slug)s is now %(role)s."),
            "unchanged": _("%(user)s was %(role)s of %(slug)s already."),
        }
        values = {"user": user.get_username(), "role": role, "slug": slug}
        self.stdout.write(messages[outcome] % values)
        if created:
            self.stdout.write(
                _(
                    "User %(user)s created without a password: set one with "
                    "`manage.py changepassword %(user)s`."
                )
                % values
            )
        elif not user.is_staff:
            self.stdout.write(
                _("%(user)s is not staff: their API keys work, the admin does not.") % values
            )
