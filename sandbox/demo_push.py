"""Demo push subscriptions that survive a sandbox restart.

A real browser keeps its subscription's private key; the sandbox push service keeps them in
memory, so subscriptions seeded into the database by `manage.py seed_demo` would be unknown to a
freshly started `manage.py sandbox`. Instead, each demo subscription's key pair and auth secret
are derived from its id: the seed writes the public half into PushSubscription, and the sandbox
re-derives the private half the first time a push for that id arrives. Loopback demo data only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.push import FakeSubscription, PushServiceFake, b64url

DEMO_PREFIX = "demo-"
_SEED = b"continuity-sandbox-demo-push"
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def demo_subscription(sub_id: str) -> FakeSubscription:
    digest = hashlib.sha512(_SEED + sub_id.encode()).digest()
    secret = int.from_bytes(digest[:32], "big") % (_P256_ORDER - 1) + 1
    return FakeSubscription(
        id=sub_id,
        private_key=ec.derive_private_key(secret, ec.SECP256R1()),
        auth=digest[32:48],
    )


def demo_subscription_keys(sub_id: str) -> tuple[str, str]:
    """(p256dh, auth) as a browser would report them, for the seed to store."""
    sub = demo_subscription(sub_id)
    public = sub.private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(public), b64url(sub.auth)


class _DemoSubscriptions(dict[str, FakeSubscription]):
    def get(self, key: str, default: Any = None) -> Any:
        if key not in self and key.startswith(DEMO_PREFIX):
            self[key] = demo_subscription(key)
        return super().get(key, default)


def demo_subscriptions_enable(fake: PushServiceFake) -> None:
    """Let the fake answer pushes to any demo-<n> endpoint with its derived keys."""
    fake.subscriptions = _DemoSubscriptions(fake.subscriptions)
