"""Monitor source secrets: generated here, encrypted at rest, shown once, rotated with overlap.

The key that encrypts them is OUTAGES_CREDENTIAL_KEY, with OUTAGES_CREDENTIAL_KEY_FALLBACKS for
rotation (docs/configuration.md, "Secrets and rotation"); ``monitor_secrets_rotate`` moves every
stored secret under the newest key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from outages.models import MonitorCredential, MonitorSource


def _materials(*, encrypting: bool) -> tuple[str, ...]:
    """Key material, newest first: the first encrypts, every one decrypts.

    OUTAGES_CREDENTIAL_KEY (and its fallbacks) when set; SECRET_KEY stands in for it only in
    the sandbox: outside it nothing is encrypted without a key of its own (the deploy checks
    refuse to start without one). SECRET_KEY and its fallbacks are always tried last for
    reading, so secrets encrypted before the install had a key of its own, or before a
    SECRET_KEY rotation, keep opening until ``secrets_rotate`` moved them.
    """
    own = settings.OUTAGES_CREDENTIAL_KEY
    if encrypting and not own and not settings.SANDBOX_ENABLED:
        raise ImproperlyConfigured(
            "OUTAGES_CREDENTIAL_KEY is not set: outside the sandbox monitor source secrets need "
            'a key of their own (docs/configuration.md, "Secrets and rotation").'
        )
    candidates = (
        own,
        *settings.OUTAGES_CREDENTIAL_KEY_FALLBACKS,
        settings.SECRET_KEY,
        *settings.SECRET_KEY_FALLBACKS,
    )
    # dict.fromkeys keeps the first occurrence, so the order (which key encrypts) is kept.
    return tuple(dict.fromkeys(m for m in candidates if m))


@functools.lru_cache(maxsize=8)
def _build(materials: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(material) for material in materials])


def _derive(material: str) -> Fernet:
    # Any string can be the key material: a Fernet key is 32 bytes, so it is hashed to size.
    digest = hashlib.sha256(f"outages-credentials:{material}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _fernet(*, encrypting: bool = False) -> MultiFernet:
    return _build(_materials(encrypting=encrypting))


def _encrypt(secret: str) -> str:
    return _fernet(encrypting=True).encrypt(secret.encode()).decode()


def _decrypt(token: str) -> str | None:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None


def _is_current(token: str) -> bool:
    try:
        _derive(_materials(encrypting=True)[0]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def monitor_secrets_rotate(*, batch_size: int = 500) -> dict[str, tuple[int, int, int]]:
    """Re-encrypt every stored source secret under the newest key (``manage.py secrets_rotate``
    runs it). Returns {column: (re-encrypted, already current, unreadable)}.

    Idempotent, and a concurrent rotation by an operator wins: each row is swapped only if it
    still holds the ciphertext read. Unreadable rows are counted and left in place."""
    reencrypted = current = unreadable = 0
    fernet = _fernet(encrypting=True)
    rows = MonitorCredential.objects.order_by("pk").values_list("pk", "secret_encrypted")
    for pk, token in rows.iterator(chunk_size=batch_size):
        if _is_current(token):
            current += 1
            continue
        try:
            rotated = fernet.rotate(token.encode()).decode()
        except InvalidToken:
            unreadable += 1
            continue
        MonitorCredential.objects.filter(pk=pk, secret_encrypted=token).update(
            secret_encrypted=rotated
        )
        reencrypted += 1
    source_cache_clear()
    return {"outages.MonitorCredential.secret_encrypted": (reencrypted, current, unreadable)}


@dataclass(frozen=True)
class IssuedSecret:
    """The plaintext secret, returned once to show the operator; only the ciphertext is kept."""

    credential: MonitorCredential
    secret: str


def credential_issue(*, source: MonitorSource, secret: str | None = None) -> IssuedSecret:
    """Give a source a new current secret (generated unless given)."""
    plaintext = secret or secrets.token_urlsafe(32)
    credential = MonitorCredential.objects.create(
        source=source, secret_encrypted=_encrypt(plaintext), hint=plaintext[-4:]
    )
    return IssuedSecret(credential=credential, secret=plaintext)


def credential_rotate(
    *, source: MonitorSource, overlap: timedelta | None = None, secret: str | None = None
) -> IssuedSecret:
    """Issue a new secret; the ones in use keep working for ``overlap`` (a setting by default)."""
    if overlap is None:
        overlap = timedelta(seconds=settings.OUTAGES_CREDENTIAL_OVERLAP_S)
    now = timezone.now()
    with transaction.atomic():
        MonitorCredential.objects.filter(source=source).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now + overlap)
        ).update(expires_at=now + overlap)
        return credential_issue(source=source, secret=secret)


def source_secrets(*, source: MonitorSource) -> list[str]:
    """The secrets a request may currently be authenticated with, newest first."""
    now = timezone.now()
    rows = MonitorCredential.objects.filter(source=source).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    return [s for s in (_decrypt(r.secret_encrypted) for r in rows) if s]


# Per-process cache of source + decrypted secrets: the webhook hot path then costs no query for
# them. Saves in this process clear it at once (see apps.py); other processes within the TTL.
_cache: dict[str, tuple[float, MonitorSource | None, list[tuple[str, datetime | None]]]] = {}
_cache_lock = threading.Lock()


def source_cache_clear(**_: object) -> None:
    with _cache_lock:
        _cache.clear()


def source_with_secrets(*, slug: str) -> tuple[MonitorSource | None, list[str]]:
    """The active source at ``slug`` and the secrets valid right now (cached briefly)."""
    ttl = settings.OUTAGES_SOURCE_CACHE_S
    now_mono = time.monotonic()
    cached = _cache.get(slug) if ttl > 0 else None
    if cached is None or now_mono - cached[0] > ttl:
        source = MonitorSource.objects.filter(slug=slug, active=True).first()
        rows: list[tuple[str, datetime | None]] = []
        if source is not None:
            for credential in MonitorCredential.objects.filter(source=source):
                plain = _decrypt(credential.secret_encrypted)
                if plain:
                    rows.append((plain, credential.expires_at))
        cached = (now_mono, source, rows)
        if ttl > 0:
            with _cache_lock:
                _cache[slug] = cached
    _, source, rows = cached
    now = timezone.now()
    return source, [secret for secret, expires in rows if expires is None or expires > now]
