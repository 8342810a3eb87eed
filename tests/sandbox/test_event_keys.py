"""The embedded demo's SendGrid fake and the app agree on the event-signing key by themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from delivery.sandbox.event_keys import sandbox_event_keys
from delivery.sandbox.sendgrid import SendGridFake
from tests.harness import ROOT

SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps(["
    "s.SANDBOX_SENDGRID_EVENT_SIGNING_KEY, s.ANYMAIL['SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY'],"
    " s.SANDBOX_SENDGRID_EVENTS_URL]))"
)


def _settings_seen(var_dir: Path, **env: str) -> list[str | None]:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CONTINUITY_VAR_DIR": str(var_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen: list[str | None] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def test_the_demo_fake_signs_with_the_key_the_app_verifies_with(tmp_path: Path) -> None:
    web = _settings_seen(tmp_path, DEBUG="true")
    sandbox = _settings_seen(tmp_path, DEBUG="true")

    assert web == sandbox  # two processes, one key pair
    signing_pem, verification_key, events_url = web
    assert signing_pem
    assert SendGridFake(signing_key_pem=str(signing_pem)).verification_key == verification_key
    assert events_url == "http://127.0.0.1:8000/webhooks/sendgrid/events/"


def test_a_real_sendgrid_url_or_production_mode_never_gets_a_generated_key(
    tmp_path: Path,
) -> None:
    real = _settings_seen(tmp_path, DEBUG="true", SENDGRID_API_URL="https://api.sendgrid.com/v3/")
    production = _settings_seen(tmp_path, DEBUG="false", SECRET_KEY="x" * 50)

    assert real == ["", None, ""]
    assert production == ["", None, ""]


def test_processes_starting_together_end_up_with_one_key_pair(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        pairs = set(pool.map(lambda _: sandbox_event_keys(tmp_path), range(16)))

    assert len(pairs) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox_sendgrid_events.pem"]
