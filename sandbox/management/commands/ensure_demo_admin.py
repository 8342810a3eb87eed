from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a demo superuser with a random password if no superuser exists yet."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("Admin account exists already; its password is unchanged.")
            return
        # Random per machine and printed once: no password is ever committed to the repository.
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=username, email="", password=password)
        banner = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"{banner}\nDemo admin created (shown only this once):\n"
                f"  http://127.0.0.1:8000/admin/   user: {username}   password: {password}\n"
                f"Forgot it? .venv/bin/python manage.py changepassword {username}\n{banner}"
            )
        )
