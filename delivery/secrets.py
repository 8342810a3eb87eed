"""Encryption at rest for the install's stored secrets: social access tokens (SocialAccount) and
workspace provider credentials (WorkspaceCredentials) are kept only as ciphertext.

Keys come from SOCIAL_TOKEN_KEYS (the name predates workspace credentials; it is the one key list
for every stored secret), comma-separated Fernet keys: the first encrypts, every key decrypts, so
rotation is "prepend a new key, run ``manage.py secrets_rotate``, then drop the old key" (the
same command re-encrypts the secrets other apps keep under keys of their own,
SECRETS_ROTATE_HOOKS). Production without keys fails loudly, and before that refuses to start
(continuity/checks.py); DEBUG without keys generates a per-checkout key in var/ (like SECRET_KEY)
so the demo works and survives restarts.

This lives in delivery/ because campaigns (SocialAccount) may import delivery and the
providers and publishers are the only readers of plain secrets; nothing here touches models.
"""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class TokenDecryptError(Exception):
    """Stored ciphertext that no configured key opens (a dropped key, or tampering)."""


def token_encrypt(*, plaintext: str) -> str:
    """Ciphertext for storage, encrypted with the first configured key."""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def token_decrypt(*, ciphertext: str) -> str:
    """The plain token, trying every configured key."""
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError, ValueError):
        raise TokenDecryptError(
            "a stored secret cannot be decrypted with any key in SOCIAL_TOKEN_KEYS: "
            "the key that encrypted it was removed, or the value was altered; set the secret "
            "again or restore the old key"
        ) from None


def token_reencrypt(*, ciphertext: str) -> str:
    """The same token encrypted with the current first key (for rotation)."""
    try:
        return _fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError, ValueError):
        raise TokenDecryptError(
            "cannot re-encrypt: no key in SOCIAL_TOKEN_KEYS opens this token"
        ) from None


def token_is_current(*, ciphertext: str) -> bool:
    """True when the first (newest) key alone opens it: rotation has nothing to do for it."""
    try:
        _build(token_keys()[:1]).decrypt(ciphertext.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError, ValueError):
        return False
    return True


def token_keys() -> tuple[str, ...]:
    """The configured keys, or a generated one in DEBUG; ImproperlyConfigured otherwise."""
    configured = tuple(key.strip() for key in settings.SOCIAL_TOKEN_KEYS if key.strip())
    if configured:
        return configured
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            "SOCIAL_TOKEN_KEYS is not set: production (DEBUG off) needs at least one Fernet key "
            "to store social access tokens and provider credentials. Generate one with: "
            'python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        )
    key_file = Path(settings.VAR_DIR) / "social_token_key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    return (key_file.read_text().strip(),)


def _fernet() -> MultiFernet:
    return _build(token_keys())


@functools.lru_cache(maxsize=8)
def _build(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            # Never echo the key itself: say which one is wrong.
            raise ImproperlyConfigured(
                f"SOCIAL_TOKEN_KEYS entry {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)
