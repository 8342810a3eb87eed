"""Start-up with bad or production settings, run as a new process would see them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import ROOT


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CONTINUITY_VAR_DIR": "/tmp/continuity-var"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("DATABASE_URL", "nonsense", "DATABASE_URL='nonsense'"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' is not a Redis URL"),
        ("SQLITE_BUSY_TIMEOUT_S", "soon", "SQLITE_BUSY_TIMEOUT_S='soon' is not a whole number"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' must be one of: text, json"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_the_variable(
    variable: str, value: str, expected: str
) -> None:
    result = _manage("check", env={"DEBUG": "true", variable: value})
    assert result.returncode != 0
    assert expected in result.stderr


def test_production_without_a_secret_key_refuses_to_start() -> None:
    result = _manage("check", env={"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_settings_pass_the_deploy_check() -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DEBUG": "false",
            "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-0123456789",
            "ALLOWED_HOSTS": "continuity.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/continuity",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_preflight_says_when_the_database_server_runs_but_the_database_is_missing() -> None:
    env = {
        "DEBUG": "true",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/continuity_no_such_db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    result = _manage("preflight", env=env)
    assert result.returncode != 0
    assert "continuity_no_such_db does not exist" in result.stderr
    assert "createdb" in result.stderr
    assert _manage("preflight", "--test-run", env=env).returncode == 0


def test_preflight_names_each_unreachable_service_in_plain_words() -> None:
    result = _manage(
        "preflight",
        env={
            "DEBUG": "true",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/continuity",
            "REDIS_URL": "redis://127.0.0.1:2/0",
        },
    )
    assert result.returncode != 0
    assert "DATABASE is unreachable: postgresql at 127.0.0.1:1/continuity" in result.stderr
    assert "REDIS is unreachable at redis://127.0.0.1:2/0" in result.stderr
    assert "Traceback" not in result.stderr
