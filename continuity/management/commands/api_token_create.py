"""`manage.py api_token_create USERNAME --workspace SLUG [--expires-days N]`: prints only the key.

Only the key goes to stdout, so `TOKEN=$(manage.py api_token_create ...)` works in scripts;
everything else goes to stderr. The key is stored hashed: this is the one time it is shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from continuity.api_keys import api_key_expiry, api_key_issue
from continuity.errors import TenancyError
from continuity.models import Workspace
from continuity.workspaces import command_access

# Long enough for any integration, short enough that a forgotten key still dies.
MAX_EXPIRY_DAYS = 3650


class Command(BaseCommand):
    help = (
        "Create an API key for USERNAME acting in the workspace SLUG (without --workspace: an "
        "install-wide key, operators only) and print only the key."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--workspace", metavar="SLUG", default=None)
        parser.add_argument("--expires-days", metavar="N", default=None)
        parser.add_argument("--name", default=None)

    def handle(
        self,
        *args: Any,
        username: str,
        workspace: str | None,
        expires_days: str | None,
        name: str | None,
        **options: Any,
    ) -> None:
        days = _days(expires_days)
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(_("No user is named %(user)r.") % {"user": username})
        ws = None
        if workspace is not None:
            ws = Workspace.objects.filter(slug=workspace).first()
            if ws is None:
                raise CommandError(_("No workspace has the slug %(slug)r.") % {"slug": workspace})
        label = name or (f"{username} @ {ws.slug}" if ws else f"{username} (install)")
        try:
            _row, key = api_key_issue(
                access=command_access(workspace=ws),
                user=user,
                workspace=ws,
                name=label,
                expires_at=api_key_expiry(days=days),
            )
        except TenancyError as exc:
            raise CommandError(str(exc.detail)) from None
        self.stdout.write(key)


def _days(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise CommandError(
            _("--expires-days must be a whole number from 1 to %(max)d.") % {"max": MAX_EXPIRY_DAYS}
        )
    return days
