"""Monitor source secrets: generated here, encrypted at rest, shown once, rotated with overlap."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from outages.models import MonitorCredential, MonitorSource


def _fernet() -> Fernet:
    # A dedicated key can be configured; otherwise one is derived from SECRET_KEY, so changing
    # SECRET_KEY means re-issuing source secrets (documented in docs/monitors.md).
    material = getattr(settings, "OUTAGES_CREDENTIAL_KEY", "") or settings.SECRET_KEY
    digest = hashlib.sha256(f"outages-credentials:{material}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def _decrypt(token: str) -> str | None:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None


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
