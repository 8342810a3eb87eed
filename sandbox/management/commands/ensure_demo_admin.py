from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from continuity.workspaces import command_access, operator_add
from sandbox.demo import DEMO_ADMIN, DEMO_PEOPLE


class Command(BaseCommand):
    help = (
        "Create the demo superuser (an operator too) with a random password if no superuser "
        "exists yet, and the demo's marketer and viewer with the same password; `seed_demo` "
        "makes them members of the demo workspaces."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=DEMO_ADMIN)

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin account exists already; its password is unchanged.")
            return
        # Random per machine and printed once: no password is ever committed to the repository.
        password = secrets.token_urlsafe(12)
        created = [username]
        with transaction.atomic():
            admin = user_model.objects.create_superuser(
                username=username, email="", password=password
            )
            operator_add(access=command_access(), user=admin)
            for person, _role, _slug in DEMO_PEOPLE:
                if not user_model.objects.filter(username=person).exists():
                    user_model.objects.create_user(
                        username=person, password=password, is_staff=True
                    )
                    created.append(person)
        people = ", ".join(
            f"{person} ({role.label}, {slug})"
            for person, role, slug in DEMO_PEOPLE
            if person in created
        )
        banner = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"{banner}\nDemo admin created (shown only this once):\n"
                f"  http://127.0.0.1:8000/admin/   user: {username}   password: {password}\n"
                + (f"Same password for the demo's {people}.\n" if people else "")
                + f"Forgot it? .venv/bin/python manage.py changepassword {username}\n{banner}"
            )
        )
