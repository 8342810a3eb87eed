from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from sandbox.demo import DEMO_ADMIN, demo_seed
from sandbox.event_keys import sandbox_event_keys_ensure


class Command(BaseCommand):
    help = (
        "Seed the demo agency once (two client workspaces, each with contacts, segments, "
        "accounts and campaigns; a monitor source; demo people) and the SendGrid fake's event "
        "key pair."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--contacts", type=int, default=5000, help="in all, split in two")
        parser.add_argument("--admin", default=DEMO_ADMIN, help="the demo admin's username")

    def handle(self, *args: Any, contacts: int, admin: str, **options: Any) -> None:
        if settings.SANDBOX_SENDGRID_DEMO_EVENTS:
            # Here rather than in settings or in `manage.py sandbox`: `make run` runs this before
            # it starts web and sandbox together, so both read one pair that already exists.
            sandbox_event_keys_ensure(
                private_path=settings.SANDBOX_SENDGRID_DEMO_KEY_FILE,
                public_path=settings.SANDBOX_SENDGRID_DEMO_PUBLIC_KEY_FILE,
            )
        info = demo_seed(contacts=contacts, admin=admin)
        if info.without_password:
            names = ", ".join(info.without_password)
            self.stdout.write(
                f"Demo people {names} have no password yet: set one with "
                f"`.venv/bin/python manage.py changepassword NAME`."
            )
        if not info.created:
            self.stdout.write(f"Demo already seeded ({info.contacts} contacts); left as it is.")
            if info.rescheduled:
                self.stdout.write(
                    self.style.SUCCESS(
                        "No demo campaign was still due: the same campaigns are scheduled "
                        "again, due in the next minutes."
                    )
                )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo seeded: workspaces {', '.join(info.workspaces)} with {info.contacts} "
                f"contacts in all, 3 social accounts and 3 campaigns each, due in the next "
                f"minutes; monitor source at {info.source_url} "
                f"(bearer token in {info.token_file})."
            )
        )
