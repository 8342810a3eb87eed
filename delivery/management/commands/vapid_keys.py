"""Generate a VAPID key pair and print it as settings lines (nothing is written to disk)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode

from delivery.providers.webpush import vapid_public_key


class Command(BaseCommand):
    help = "Generate a VAPID key pair for web push and print the settings lines to add to .env."

    def handle(self, *args: Any, **options: Any) -> None:
        vapid = Vapid02()
        vapid.generate_keys()
        private_key = vapid.private_key
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)  # noqa: S101 - generate_keys  # nosec B101
        raw = private_key.private_numbers().private_value.to_bytes(32, "big")
        self.stdout.write("# Web push VAPID keys: keep the private key secret.")
        self.stdout.write(f"VAPID_PRIVATE_KEY={b64urlencode(raw)}")
        self.stdout.write(f"VAPID_PUBLIC_KEY={vapid_public_key(vapid)}")
        self.stdout.write("# The public key is the applicationServerKey browsers subscribe with.")
