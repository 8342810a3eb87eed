"""Test settings: real PostgreSQL and Redis at their local defaults, overridable by env."""

import os
import secrets

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("LOG_FORMAT", "text")
# Tests, benchmarks and the end-to-end workers use the loopback fakes of the sandbox app.
os.environ.setdefault("SANDBOX_ENABLED", "true")
# Tests start their own SendGrid fakes with their own keys; the demo's shared pair stays out.
os.environ.setdefault("SANDBOX_SENDGRID_DEMO_EVENTS", "false")
# pytest-django runs tests with DEBUG off, where a missing token key is refused; this one is for
# tests only, and a worker started by a test inherits whatever key that test chose.
os.environ.setdefault("SOCIAL_TOKEN_KEYS", "yHxtgplI4byoFRvWeYVvgG1Lh_2YgwSfztm2VuhAfVU=")
# One Redis namespace per run: broker queues, worker control, cache and pace keys all start with
# it, so a worker left over from another run, checkout or `make bench` on the same Redis consumes
# nothing of this one. The first process to load these settings picks it; every process it starts
# (workers, the sandbox, benchmark scripts) inherits it through the environment.
os.environ.setdefault("REDIS_KEY_PREFIX", f"continuity-test-{secrets.token_hex(6)}:")
# `make test` runs pytest in parallel processes (pytest-xdist), each on a test database of its own
# (pytest-django suffixes it): each also gets a namespace of its own inside the run's, so one
# process's workers never take, and its queue purges never drop, another's tasks. The run's
# closing clean-up deletes the run's prefix, which covers them all.
# The marker travels to the processes a test starts, which keep the namespace they are given
# (a test may start one in another run's namespace on purpose).
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker and os.environ.get("REDIS_KEY_PREFIX_WORKER") != _xdist_worker:
    os.environ["REDIS_KEY_PREFIX"] += f"{_xdist_worker}:"
    os.environ["REDIS_KEY_PREFIX_WORKER"] = _xdist_worker

from continuity.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Rate limits count per address across a whole run, and every in-process test client is
# 127.0.0.1: they are off for the test run (tests/continuity/test_throttle.py switches them on).
# Set here, not in os.environ, which child processes inherit: a server a test starts in
# production mode (DEBUG=false, tests/e2e) keeps the production default.
if DEBUG and "THROTTLE_ENABLED" not in os.environ:  # noqa: F405
    THROTTLE_ENABLED = False
