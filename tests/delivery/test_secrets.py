from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from delivery.secrets import TokenDecryptError, token_decrypt, token_encrypt, token_reencrypt

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
TOKEN = "EAAGrealLookingPageToken123"


def test_a_token_round_trips_and_the_ciphertext_hides_it(settings: Any) -> None:
    settings.SOCIAL_TOKEN_KEYS = [OLD]
    stored = token_encrypt(plaintext=TOKEN)
    assert TOKEN not in stored
    assert stored != token_encrypt(plaintext=TOKEN), "Fernet is randomised per encryption"
    assert token_decrypt(ciphertext=stored) == TOKEN


def test_rotation_new_key_first_still_reads_old_tokens_and_reencrypts_them(settings: Any) -> None:
    settings.SOCIAL_TOKEN_KEYS = [OLD]
    stored_old = token_encrypt(plaintext=TOKEN)
    settings.SOCIAL_TOKEN_KEYS = [NEW, OLD]
    assert token_decrypt(ciphertext=stored_old) == TOKEN
    rotated = token_reencrypt(ciphertext=stored_old)
    fresh = token_encrypt(plaintext=TOKEN)
    settings.SOCIAL_TOKEN_KEYS = [NEW]
    assert token_decrypt(ciphertext=rotated) == TOKEN
    assert token_decrypt(ciphertext=fresh) == TOKEN
    with pytest.raises(TokenDecryptError, match="cannot be decrypted"):
        token_decrypt(ciphertext=stored_old)


def test_tampered_or_garbage_ciphertext_is_a_clear_error(settings: Any) -> None:
    settings.SOCIAL_TOKEN_KEYS = [OLD]
    stored = token_encrypt(plaintext=TOKEN)
    for bad in (stored[:-4] + "AAAA", "not-a-token", "é"):
        with pytest.raises(TokenDecryptError):
            token_decrypt(ciphertext=bad)
    with pytest.raises(TokenDecryptError):
        token_reencrypt(ciphertext="garbage")


def test_production_without_keys_refuses_to_start_storing_tokens(settings: Any) -> None:
    settings.DEBUG = False
    settings.SOCIAL_TOKEN_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="SOCIAL_TOKEN_KEYS is not set"):
        token_encrypt(plaintext=TOKEN)


def test_a_malformed_key_is_named_by_position_not_echoed(settings: Any) -> None:
    settings.SOCIAL_TOKEN_KEYS = [OLD, "short-secret-key"]
    with pytest.raises(ImproperlyConfigured, match="entry 2") as caught:
        token_encrypt(plaintext=TOKEN)
    assert "short-secret-key" not in str(caught.value)


def test_debug_without_keys_generates_one_key_that_survives_restarts(
    settings: Any, tmp_path: Path
) -> None:
    settings.DEBUG = True
    settings.SOCIAL_TOKEN_KEYS = []
    settings.VAR_DIR = tmp_path
    stored = token_encrypt(plaintext=TOKEN)
    key_file = tmp_path / "social_token_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert token_decrypt(ciphertext=stored) == TOKEN
    settings.SOCIAL_TOKEN_KEYS = [key_file.read_text()]
    assert token_decrypt(ciphertext=stored) == TOKEN
