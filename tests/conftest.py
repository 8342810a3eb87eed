from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.harness import (
    ProcessHandle,
    child_env,
    database_connections_dead_closed,
    redis_keys_delete,
    start_worker,
)


@pytest.fixture(autouse=True)
def _language_reset() -> Iterator[None]:
    """Each test starts in the install's language. LocaleMiddleware activates a request's
    language on the thread and nothing deactivates it, so a test client's Italian request would
    otherwise turn the next test's translated messages Italian (#17)."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


def _reachable(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return str(exc)


def pytest_configure(config: pytest.Config) -> None:
    """Stop in the first seconds, naming the service, when PostgreSQL or Redis is not there."""
    db = settings.DATABASES["default"]
    problems = []
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append(f"tests need PostgreSQL, but DATABASE_URL selects {db['ENGINE']}")
    else:
        error = _reachable(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
        if error:
            problems.append(
                f"PostgreSQL is unreachable at {db.get('HOST')}:{db.get('PORT')} ({error}): "
                "start it (pg_ctlcluster 15 main start) or set DATABASE_URL"
            )
    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.scheme.startswith("redis"):
        error = _reachable(broker.hostname or "127.0.0.1", broker.port or 6379)
        if error:
            problems.append(
                f"Redis is unreachable at {broker.hostname}:{broker.port} ({error}): "
                "start it (redis-server --daemonize yes) or set REDIS_URL"
            )
    else:
        problems.append(f"tests need Redis, but the broker is {settings.CELERY_BROKER_URL}")
    if problems:
        pytest.exit("\n".join(problems), returncode=3)


# Modules whose tests start processes, servers or whole benchmark runs, besides the ones marked
# e2e, chaos or browser: the test processes take them first (pytest_collection_modifyitems).
LONG_MODULES = (
    "tests/benchmarks/",
    "tests/api/test_schemathesis.py",
    "tests/contacts/test_import.py",
    "tests/continuity/test_secrets_deploy.py",
    "tests/continuity/test_settings.py",
    "tests/continuity/test_workspace_migration.py",
    "tests/outages/test_alertmanager_real.py",
    "tests/sandbox/test_app_boundary.py",
    "tests/sandbox/test_event_keys.py",
)
LONG_MARKERS = ("e2e", "chaos", "browser")


def _database_use(item: pytest.Item) -> int:
    """pytest-django's order (its plugin's get_order_number, for the function tests this suite
    has): 0 for a test in a rolled-back transaction, 1 for a transactional test (it flushes the
    tables after itself, data from migrations included), 2 without the database."""
    from pytest_django.plugin import validate_django_db

    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    transactional = "transactional_db" in fixtures or "live_server" in fixtures
    if marker is not None:
        transaction, reset_sequences, *_ = validate_django_db(marker)
        transactional = transactional or transaction or reset_sequences
    if transactional:
        return 1
    return 0 if marker is not None or "db" in fixtures else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests first, so the run ends on short ones that even out the parallel test
    processes' finishing times (they hand out tests in this order), instead of one process
    running a long test alone at the end. pytest-django's order (rolled-back, then transactional,
    then database-free tests) stays: a transactional test's flush must not come before the tests
    that expect what the migrations wrote. Only long database-free tests, which cannot see the
    database, move to the very front."""
    root = config.rootpath

    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(root).as_posix()
        long = path.startswith(LONG_MODULES) or any(
            item.get_closest_marker(name) for name in LONG_MARKERS
        )
        use = _database_use(item)
        if use == 2 and long:
            return -1
        return use * 2 + (0 if long else 1)

    items.sort(key=rank)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Leave nothing of this run's Redis namespace behind (an xdist worker leaves it to the
    controller, since its siblings still use it)."""
    if hasattr(session.config, "workerinput"):
        return
    if urlsplit(settings.CELERY_BROKER_URL).scheme.startswith("redis"):
        redis_keys_delete(url=settings.REDIS_URL, prefix=settings.REDIS_KEY_PREFIX)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Each test process's database is a copy of one template migrated once for the current
    migrations (built as the benchmarks build theirs, benchmarks/_common.py, under a name of its
    own): the parallel test processes share one `migrate` (the first to ask builds it, the others
    wait for it) instead of each running every migration. Django still runs `migrate` on the
    copy, which finds nothing to do."""
    from benchmarks._common import bench_template_ensure

    template = bench_template_ensure(prefix="continuity_test_tpl_")
    settings.DATABASES["default"].setdefault("TEST", {})["TEMPLATE"] = template


@pytest.fixture(autouse=True)
def _database_connections_alive_after_each_test() -> Iterator[None]:
    """A test that cuts database connections on purpose (chaos, retention, in-flight) must not
    hand a dead one to whichever test its process runs next: before and after each test, a
    connection the server closed is closed here too, and the next query opens a new one."""
    database_connections_dead_closed()
    yield
    database_connections_dead_closed()


@pytest.fixture
def worker_env(transactional_db: None) -> dict[str, str]:
    """Environment for child processes that must see the test database and the test broker."""
    from django.db import connection

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # REDIS_KEY_PREFIX travels too (child_env copies it), so workers share this run's namespace.
    return child_env(
        {
            "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        }
    )


@pytest.fixture
def celery_worker_process(worker_env: dict[str, str]) -> Iterator[Callable[..., ProcessHandle]]:
    """Start real `celery worker` processes on the test database; all are stopped afterwards."""
    from continuity.celery import app

    with app.connection_for_write() as conn:
        for queue in app.conf.task_queues:
            queue.bind(conn.default_channel).purge()
    started: list[ProcessHandle] = []

    def start(env_extra: dict[str, str] | None = None, **kwargs: object) -> ProcessHandle:
        from continuity.celery import ALL_QUEUES

        kwargs.setdefault("queues", ALL_QUEUES)
        env = {**worker_env, **(env_extra or {})}
        handle = start_worker(env=env, **kwargs)  # type: ignore[arg-type]
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def owner_client(client: Any, db: Any) -> Any:
    """The admin as the tests' workspace's owner (named "admin"), not a superuser: exactly the
    rights an owner has there."""
    from continuity.models import Role
    from tests.workspaces import make_member, workspace_for_tests

    client.force_login(
        make_member(workspace=workspace_for_tests(), role=Role.OWNER, username="admin")
    )
    return client


@pytest.fixture
def admin_client(client: Any, admin_user: Any) -> Any:
    """pytest-django's superuser, signed in and acting in the tests' workspace (the factories'
    default): a superuser with no membership would act in whichever workspace sorts first."""
    from continuity.models import Membership, Role
    from tests.workspaces import workspace_for_tests

    Membership.objects.get_or_create(
        user=admin_user, workspace=workspace_for_tests(), defaults={"role": Role.OWNER}
    )
    client.force_login(admin_user)
    return client


@pytest.fixture
def drill_worker(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str, Any]]:
    """The admin drill page enqueues its planning (campaigns.drill); this runs the queued task's
    body in-process at once, as a worker would, and lists what was queued."""
    from campaigns import tasks

    queued: list[tuple[int, str, Any]] = []

    def run_now(*, workspace_id: int, network: str, campaign_ids: list[int] | None) -> None:
        queued.append((workspace_id, network, campaign_ids))
        tasks.drill_run(workspace_id, network, campaign_ids)

    monkeypatch.setattr(tasks, "drill_enqueue", run_now)
    return queued


@pytest.fixture
def sendgrid(settings: Any) -> Iterator[Any]:
    """A SendGrid fake on loopback that the app's email sender posts to (anymail pointed at it,
    the cached sender rebuilt before and after)."""
    from delivery.senders import channel_sender
    from sandbox.sendgrid import SendGridFake

    with SendGridFake(api_key="tests-sendgrid-key") as fake:
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "SENDGRID_API_KEY": fake.api_key,
            "SENDGRID_API_URL": f"{fake.url}/v3/",
        }
        channel_sender.cache_clear()
        yield fake
        channel_sender.cache_clear()
