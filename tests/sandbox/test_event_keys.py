"""The embedded demo's SendGrid fake and the app agree on the event-signing key by themselves."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from sandbox.event_keys import sandbox_event_keys_ensure
from sandbox.management.commands.sandbox import sandbox_event_signing_key
from sandbox.sendgrid import SendGridFake
from tests.harness import ROOT

SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps(["
    "s.SANDBOX_SENDGRID_DEMO_EVENTS, s.ANYMAIL['SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY'],"
    " s.SANDBOX_SENDGRID_EVENTS_URL]))"
)
KEY_FILES = ("sandbox_sendgrid_events.pem", "sandbox_sendgrid_events.pub")


def _settings_seen(var_dir: Path, **env: str) -> list[Any]:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CONTINUITY_VAR_DIR": str(var_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen: list[Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def _key_files(var_dir: Path) -> list[str]:
    return sorted(p.name for p in var_dir.iterdir() if p.name in KEY_FILES)


def _demo_paths(settings: Any, var_dir: Path) -> None:
    settings.SANDBOX_SENDGRID_EVENT_SIGNING_KEY = ""
    settings.SANDBOX_SENDGRID_DEMO_EVENTS = True
    settings.SANDBOX_SENDGRID_DEMO_KEY_FILE = var_dir / KEY_FILES[0]
    settings.SANDBOX_SENDGRID_DEMO_PUBLIC_KEY_FILE = var_dir / KEY_FILES[1]


def test_loading_the_settings_never_writes_a_key(tmp_path: Path) -> None:
    demo, verification_key, events_url = _settings_seen(tmp_path, DEBUG="true")

    assert demo is True
    assert verification_key is None  # nothing generated yet: unsigned events stay refused
    assert events_url == "http://127.0.0.1:8000/webhooks/sendgrid/events/"
    assert _key_files(tmp_path) == []


def test_the_demo_fake_signs_with_the_key_the_app_verifies_with(
    tmp_path: Path, settings: Any
) -> None:
    pem, public = sandbox_event_keys_ensure(
        private_path=tmp_path / KEY_FILES[0], public_path=tmp_path / KEY_FILES[1]
    )
    web = _settings_seen(tmp_path, DEBUG="true")
    _demo_paths(settings, tmp_path)

    assert web[1] == public
    assert sandbox_event_signing_key() == pem  # what `manage.py sandbox` hands its SendGrid fake
    assert SendGridFake(signing_key_pem=pem).verification_key == public


def test_a_real_sendgrid_url_production_or_no_sandbox_never_reads_the_demo_key(
    tmp_path: Path,
) -> None:
    sandbox_event_keys_ensure(
        private_path=tmp_path / KEY_FILES[0], public_path=tmp_path / KEY_FILES[1]
    )
    real = _settings_seen(tmp_path, DEBUG="true", SENDGRID_API_URL="https://api.sendgrid.com/v3/")
    production = _settings_seen(
        tmp_path, DEBUG="false", SECRET_KEY="x" * 50, CONTACTS_LINK_SIGNING_KEY="y" * 50
    )
    switched_off = _settings_seen(tmp_path, DEBUG="true", SANDBOX_ENABLED="false")

    assert real == [False, None, ""]
    assert production == [False, None, ""]
    assert switched_off == [False, None, ""]


def test_processes_starting_together_end_up_with_one_key_pair(tmp_path: Path) -> None:
    paths = {"private_path": tmp_path / KEY_FILES[0], "public_path": tmp_path / KEY_FILES[1]}
    with ThreadPoolExecutor(max_workers=8) as pool:
        pairs = set(pool.map(lambda _: sandbox_event_keys_ensure(**paths), range(16)))

    assert len(pairs) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == list(KEY_FILES)
    assert paths["public_path"].read_text() == next(iter(pairs))[1]


@pytest.mark.django_db
def test_seed_demo_writes_the_pair_before_web_and_sandbox_start(
    tmp_path: Path, settings: Any
) -> None:
    settings.VAR_DIR = tmp_path
    _demo_paths(settings, tmp_path / "keys")

    call_command("seed_demo", contacts=5, stdout=io.StringIO())

    assert _key_files(tmp_path / "keys") == list(KEY_FILES)
    pem = (tmp_path / "keys" / KEY_FILES[0]).read_text()
    public = (tmp_path / "keys" / KEY_FILES[1]).read_text()
    assert SendGridFake(signing_key_pem=pem).verification_key == public
