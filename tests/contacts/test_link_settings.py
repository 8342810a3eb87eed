"""The link signing key at start-up, as a new process sees the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT

SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.CONTACTS_LINK_SIGNING_KEY == s.SECRET_KEY, s.CONTACTS_LINK_SIGNING_KEY_FALLBACKS)"
)
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/continuity",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "CONTINUITY_VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "continuity.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_without_a_link_key_refuses_to_start_naming_it(tmp_path: Path) -> None:
    result = _settings(tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "CONTACTS_LINK_SIGNING_KEY is not set" in result.stderr


def test_production_uses_its_own_link_key_and_the_listed_fallbacks(tmp_path: Path) -> None:
    result = _settings(
        tmp_path,
        **PRODUCTION,
        CONTACTS_LINK_SIGNING_KEY="link-key-" + "k" * 50,
        CONTACTS_LINK_SIGNING_KEY_FALLBACKS="older-key-1, older-key-2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False ['older-key-1', 'older-key-2']"


def test_the_sandbox_falls_back_to_the_secret_key(tmp_path: Path) -> None:
    result = _settings(tmp_path, **PRODUCTION, SANDBOX_ENABLED="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True []"
