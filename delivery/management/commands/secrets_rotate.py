"""Re-encrypt every stored secret with the newest key of its key list.

Workspace provider credentials and social access tokens use SOCIAL_TOKEN_KEYS; monitor source
secrets use OUTAGES_CREDENTIAL_KEY and its fallbacks (a SECRETS_ROTATE_HOOKS entry).
Rotation: put the new key first (every process: the old keys still decrypt), run this, then
drop the old key. Safe to run again: values already under the newest key are left alone. Exits
non-zero when a value no configured key opens was found (nothing is dropped).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from delivery.credentials import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (workspace provider credentials, social access tokens, "
        "monitor source secrets) with the newest key of its key list; prints counts per column."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = secrets_rotate()
        total_unreadable = sum(report.unreadable.values())
        for name in sorted(report.reencrypted):
            self.stdout.write(
                f"{name}: {report.reencrypted[name]} re-encrypted, "
                f"{report.current[name]} already current, "
                f"{report.unreadable.get(name, 0)} unreadable"
            )
        self.stdout.write(
            f"total: {sum(report.reencrypted.values())} re-encrypted, "
            f"{sum(report.current.values())} already current, {total_unreadable} unreadable"
        )
        if total_unreadable:
            raise CommandError(
                f"{total_unreadable} stored secret(s) cannot be decrypted with any configured "
                "key: restore the key that encrypted them, or set those secrets again"
            )
