"""Secure by default: outside the sandbox a missing or sandbox-valued secret fails
`check --deploy`, and a production start (gunicorn, preflight, `manage.py run`) stops with it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import Error
from django.core.checks import Warning as CheckWarning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from continuity.checks import secrets_check, start_problems
from continuity.sandbox_secrets import SANDBOX_SECRETS
from tests.harness import ROOT
from tests.secrets_env import PRODUCTION_SECRET_KEY, PRODUCTION_SECRETS

# Setting (as Django sees it) for each environment variable the checks read.
ANYMAIL_KEYS = ("SENDGRID_API_KEY", "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY")


@pytest.fixture
def production(settings: Any) -> Any:
    """Production-shaped settings with every secret set: DEBUG and the sandbox off."""
    settings.DEBUG = False
    settings.SANDBOX_ENABLED = False
    settings.DELIVERY_INSTALL_CHANNELS = ["email", "sms", "push", "whatsapp"]
    settings.DELIVERY_EMAIL_FAILOVER_BACKEND = ""
    settings.DELIVERY_EMAIL_FAILOVER_OPTIONS = {
        **settings.DELIVERY_EMAIL_FAILOVER_OPTIONS,
        "api_key": "failover-production-test-key",
    }
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.ANYMAIL = {**settings.ANYMAIL, **{k: PRODUCTION_SECRETS[k] for k in ANYMAIL_KEYS}}
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "VAPID_PRIVATE_KEY",
        "VAPID_PUBLIC_KEY",
        "WHATSAPP_PHONE_NUMBER_ID",
        "WHATSAPP_ACCESS_TOKEN",
        "OUTAGES_CREDENTIAL_KEY",
        "CONTACTS_ERASURE_HASH_KEY",
        "CONTACTS_LINK_SIGNING_KEY",
    ):
        setattr(settings, name, PRODUCTION_SECRETS[name])
    settings.CONTACTS_LINK_SIGNING_KEY_FALLBACKS = []
    settings.SOCIAL_TOKEN_KEYS = [PRODUCTION_SECRETS["SOCIAL_TOKEN_KEYS"]]
    return settings


def _set(settings: Any, name: str, value: str) -> None:
    if name in ANYMAIL_KEYS:
        settings.ANYMAIL = {**settings.ANYMAIL, name: value}
    elif name == "DELIVERY_EMAIL_FAILOVER_API_KEY":
        settings.DELIVERY_EMAIL_FAILOVER_OPTIONS = {
            **settings.DELIVERY_EMAIL_FAILOVER_OPTIONS,
            "api_key": value,
        }
    elif name == "SOCIAL_TOKEN_KEYS":
        settings.SOCIAL_TOKEN_KEYS = [value] if value else []
    else:
        setattr(settings, name, value)


def ids(messages: list[Any]) -> list[str]:
    return sorted(m.id for m in messages)


REQUIRED = [
    ("TWILIO_ACCOUNT_SID", "continuity.E110"),
    ("TWILIO_AUTH_TOKEN", "continuity.E111"),
    ("SENDGRID_API_KEY", "continuity.E120"),
    ("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY", "continuity.E121"),
    ("VAPID_PRIVATE_KEY", "continuity.E130"),
    ("VAPID_PUBLIC_KEY", "continuity.E131"),
    ("WHATSAPP_ACCESS_TOKEN", "continuity.E141"),
    ("SOCIAL_TOKEN_KEYS", "continuity.E150"),
    ("OUTAGES_CREDENTIAL_KEY", "continuity.E160"),
    ("CONTACTS_ERASURE_HASH_KEY", "continuity.E170"),
]


def test_with_every_secret_set_the_deploy_check_has_nothing_to_say(production: Any) -> None:
    assert secrets_check() == []
    call_command("check", deploy=True, fail_level="ERROR")  # raises on any error
    assert start_problems() == []


@pytest.mark.parametrize(("name", "check_id"), REQUIRED)
def test_a_missing_secret_fails_check_deploy_naming_the_variable_and_how_to_set_it(
    production: Any, name: str, check_id: str
) -> None:
    _set(production, name, "")

    [message] = secrets_check()
    assert isinstance(message, Error)
    assert message.id == check_id
    assert message.msg.startswith(f"{name} is not set")
    assert message.hint is not None
    assert name in message.hint and ("Set" in message.hint or "set" in message.hint)
    with pytest.raises(SystemCheckError, match=name):
        call_command("check", deploy=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *SANDBOX_SECRETS.items(),
        ("SENDGRID_API_KEY", "sandbox-anything"),  # every sandbox- value is the sandbox's
    ],
)
def test_a_sandbox_stand_in_outside_the_sandbox_is_an_error_too(
    production: Any, name: str, value: str
) -> None:
    production.DELIVERY_EMAIL_FAILOVER_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    _set(production, name, value)

    [message] = secrets_check()
    assert message.msg.startswith(f"{name} holds the sandbox's stand-in value")
    identifier = name in ("TWILIO_FROM_NUMBER", "WHATSAPP_PHONE_NUMBER_ID")
    assert isinstance(message, CheckWarning if identifier else Error)


def test_the_failover_key_is_required_only_when_a_failover_esp_is_configured(
    production: Any,
) -> None:
    _set(production, "DELIVERY_EMAIL_FAILOVER_API_KEY", "")
    assert secrets_check() == []

    production.DELIVERY_EMAIL_FAILOVER_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    assert ids(secrets_check()) == ["continuity.E122"]


@pytest.mark.parametrize(
    ("name", "check_id"),
    [("TWILIO_FROM_NUMBER", "continuity.W112"), ("WHATSAPP_PHONE_NUMBER_ID", "continuity.W140")],
)
def test_a_missing_sender_identifier_is_a_warning_not_a_refusal(
    production: Any, name: str, check_id: str
) -> None:
    _set(production, name, "")

    [message] = secrets_check()
    assert isinstance(message, CheckWarning)
    assert (message.id, message.msg.startswith(f"{name} is not set")) == (check_id, True)
    assert start_problems() == []


def test_a_messaging_service_stands_in_for_the_from_number(production: Any) -> None:
    _set(production, "TWILIO_FROM_NUMBER", "")
    production.TWILIO_MESSAGING_SERVICE_SID = "MG" + "3" * 32
    assert secrets_check() == []


def test_a_channel_without_an_install_account_needs_none_of_its_secrets(
    production: Any,
) -> None:
    for name in ("TWILIO_AUTH_TOKEN", "SENDGRID_API_KEY", "VAPID_PRIVATE_KEY"):
        _set(production, name, "")
    _set(production, "WHATSAPP_ACCESS_TOKEN", "")
    production.DELIVERY_INSTALL_CHANNELS = ["push"]
    assert ids(secrets_check()) == ["continuity.E130"]

    production.DELIVERY_INSTALL_CHANNELS = []
    assert secrets_check() == []
    # The keys that encrypt and hash stored data are needed whatever the channels.
    _set(production, "OUTAGES_CREDENTIAL_KEY", "")
    assert ids(secrets_check()) == ["continuity.E160"]


def test_an_unknown_channel_or_a_malformed_fernet_key_is_named(production: Any) -> None:
    production.DELIVERY_INSTALL_CHANNELS = ["email", "pigeon"]
    production.SOCIAL_TOKEN_KEYS = [PRODUCTION_SECRETS["SOCIAL_TOKEN_KEYS"], "not-a-fernet-key"]
    messages = secrets_check()
    assert ids(messages) == ["continuity.E101", "continuity.E151"]
    assert "pigeon" in messages[0].msg + messages[1].msg
    assert any("entry 2" in m.msg for m in messages)


def test_an_erasure_key_that_is_the_secret_key_is_a_warning(production: Any) -> None:
    production.CONTACTS_ERASURE_HASH_KEY = production.SECRET_KEY
    [message] = secrets_check()
    assert isinstance(message, CheckWarning)
    assert message.id == "continuity.W171"


def test_a_weak_link_key_or_one_shared_with_the_secret_key_is_an_error(production: Any) -> None:
    production.CONTACTS_LINK_SIGNING_KEY = "short"
    assert ids(secrets_check()) == ["continuity.E180"]
    production.CONTACTS_LINK_SIGNING_KEY = production.SECRET_KEY
    assert ids(secrets_check()) == ["continuity.E181"]
    production.CONTACTS_LINK_SIGNING_KEY = PRODUCTION_SECRETS["CONTACTS_LINK_SIGNING_KEY"]
    production.CONTACTS_LINK_SIGNING_KEY_FALLBACKS = ["old-and-short"]
    [message] = secrets_check()
    assert isinstance(message, CheckWarning)
    assert message.id == "continuity.W182"


def test_the_sandbox_needs_no_secret_and_says_so_when_debug_is_off(production: Any) -> None:
    for name, _check_id in REQUIRED:
        _set(production, name, "")
    production.SANDBOX_ENABLED = True
    assert ids(secrets_check()) == ["continuity.W100"]
    assert start_problems() == []  # a warning never stops a start
    production.DEBUG = True
    assert secrets_check() == []


# --- as a new process sees it: settings defaults, and the production start paths ------------------


def _process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "CONTINUITY_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "continuity.settings",
        "DEBUG": "false",
        "SECRET_KEY": PRODUCTION_SECRET_KEY,
        # Without it settings refuse to load at all (contacts' signed links), before any check.
        "CONTACTS_LINK_SIGNING_KEY": PRODUCTION_SECRETS["CONTACTS_LINK_SIGNING_KEY"],
        "ALLOWED_HOSTS": "127.0.0.1,continuity.example.com",
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity"
        ),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        **extra,
    }


def _python(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SETTINGS_PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.TWILIO_ACCOUNT_SID, s.TWILIO_AUTH_TOKEN, s.TWILIO_FROM_NUMBER, "
    "s.ANYMAIL['SENDGRID_API_KEY'], s.DELIVERY_EMAIL_FAILOVER_OPTIONS['api_key'], "
    "s.WHATSAPP_PHONE_NUMBER_ID, s.WHATSAPP_ACCESS_TOKEN, "
    "s.CONTACTS_ERASURE_HASH_KEY == s.SECRET_KEY, bool(s.CONTACTS_ERASURE_HASH_KEY)]))"
)


def test_provider_secrets_default_to_the_sandbox_only_while_the_sandbox_is_on(
    tmp_path: Path,
) -> None:
    production = _python(["-c", SETTINGS_PROBE], _process_env(tmp_path))
    # DEBUG on but the sandbox switched off (local work against real providers): no default.
    local_real = _python(["-c", SETTINGS_PROBE], _process_env(tmp_path, SANDBOX_ENABLED="false"))
    sandbox = _python(["-c", SETTINGS_PROBE], _process_env(tmp_path, SANDBOX_ENABLED="true"))
    assert production.returncode == local_real.returncode == sandbox.returncode == 0, (
        production.stderr + local_real.stderr + sandbox.stderr
    )

    assert json.loads(production.stdout) == ["", "", "", "", "", "", "", False, False]
    assert json.loads(local_real.stdout) == ["", "", "", "", "", "", "", False, False]
    assert json.loads(sandbox.stdout) == [
        SANDBOX_SECRETS["TWILIO_ACCOUNT_SID"],
        SANDBOX_SECRETS["TWILIO_AUTH_TOKEN"],
        SANDBOX_SECRETS["TWILIO_FROM_NUMBER"],
        SANDBOX_SECRETS["SENDGRID_API_KEY"],
        SANDBOX_SECRETS["DELIVERY_EMAIL_FAILOVER_API_KEY"],
        SANDBOX_SECRETS["WHATSAPP_PHONE_NUMBER_ID"],
        SANDBOX_SECRETS["WHATSAPP_ACCESS_TOKEN"],
        True,
        True,
    ]


def test_check_deploy_in_a_new_process_fails_without_the_secrets_and_passes_with_them(
    tmp_path: Path,
) -> None:
    bare = _python(["manage.py", "check", "--deploy"], _process_env(tmp_path))
    assert bare.returncode != 0
    for name, check_id in REQUIRED:
        assert f"({check_id}) {name} is not set" in bare.stderr

    ready = _python(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        _process_env(tmp_path, **PRODUCTION_SECRETS),
    )
    assert ready.returncode == 0, ready.stderr
    assert "no issues" in ready.stdout


@pytest.mark.parametrize("command", [["preflight"], ["run", "--no-demo"]])
def test_preflight_and_run_refuse_a_production_start_without_the_secrets(
    tmp_path: Path, command: list[str]
) -> None:
    secrets = {k: v for k, v in PRODUCTION_SECRETS.items() if k != "TWILIO_AUTH_TOKEN"}
    result = _python(["manage.py", *command], _process_env(tmp_path, **secrets))

    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert "(continuity.E111) TWILIO_AUTH_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert "preflight ok" not in result.stdout


def _gunicorn(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    # Bound here on port 0 and handed over: no port is picked and then lost to another process.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "continuity.wsgi", "-b", f"fd://{listener.fileno()}", "-w", "1"],
        cwd=ROOT,
        env=env,
        pass_fds=(listener.fileno(),),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listener.close()
    return server, base


def test_gunicorn_refuses_to_load_the_app_without_the_secrets(tmp_path: Path) -> None:
    server, _base = _gunicorn(_process_env(tmp_path))
    try:
        _out, err = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode != 0
    assert "refusing to start" in err
    assert "(continuity.E111) TWILIO_AUTH_TOKEN is not set" in err
    assert "(continuity.E170) CONTACTS_ERASURE_HASH_KEY is not set" in err


def test_gunicorn_serves_once_every_secret_is_set(tmp_path: Path) -> None:
    server, base = _gunicorn(_process_env(tmp_path, **PRODUCTION_SECRETS))
    try:
        deadline = time.monotonic() + 60
        answer: dict[str, Any] | None = None
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:  # noqa: S310
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(0.1)
        assert answer == {"status": "ok"}, "gunicorn did not answer /healthz"
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_celery_worker_or_beat_refuses_a_production_start_without_the_secrets(
    tmp_path: Path, role: str
) -> None:
    celery = str(Path(sys.executable).with_name("celery"))
    argv = [celery, "-A", "continuity", role, "--loglevel", "INFO"]
    if role == "worker":
        argv += ["--pool", "solo", "--without-gossip", "--without-mingle"]
    else:
        # A file scheduler: the database one would connect before beat_init, and this test
        # has no database to offer.
        scheduler = ["--scheduler", "celery.beat:PersistentScheduler"]
        argv += ["--pidfile=", *scheduler, "--schedule", str(tmp_path / "beat-schedule")]
    # A prefix of its own: a worker that did start must not take this run's tasks.
    env = _process_env(tmp_path, REDIS_KEY_PREFIX=f"refused-{role}-{time.monotonic_ns()}:")
    started = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert started.returncode != 0
    output = started.stdout + started.stderr
    assert "refusing to start" in output
    assert "(continuity.E111) TWILIO_AUTH_TOKEN is not set" in output
