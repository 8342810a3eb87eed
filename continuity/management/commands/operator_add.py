"""`manage.py operator_add USERNAME`: an install-wide operator (outages, monitor sources)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from continuity.management.commands.workspace_member_add import username_check
from continuity.workspaces import command_access, operator_add, user_ensure


class Command(BaseCommand):
    help = (
        'Add USERNAME to the "Operator" group (install-wide: monitor sources, outage windows) '
        "and make them staff, creating the user with an unusable password if missing. Audited."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user, created = user_ensure(username=username_check(username))
        added = operator_add(access=command_access(), user=user)
        values = {"user": user.get_username()}
        if added:
            self.stdout.write(_("%(user)s is now an operator.") % values)
        else:
            self.stdout.write(_("%(user)s was an operator already.") % values)
        if created:
            self.stdout.write(
                _(
                    "User %(user)s created without a password: set one with "
                    "`manage.py changepassword %(user)s`."
                )
                % values
            )
