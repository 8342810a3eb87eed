"""The sandbox is an add-on: product apps never import it and production runs without it."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT
from tests.secrets_env import PRODUCTION_SECRETS

PRODUCT_APPS = ("continuity", "contacts", "outages", "delivery", "campaigns")

# Run in a fresh interpreter with production settings. `sandbox` is made unimportable first, so
# any import of it at start-up, from the URLconf, the admin or any product module fails loudly.
PRODUCTION_PROBE = """
import importlib, json, pkgutil, sys
from importlib.abc import MetaPathFinder

class NoSandbox(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ImportError(f"product code imported {name}")
        return None

sys.meta_path.insert(0, NoSandbox())
import django
django.setup()
from django.apps import apps
from django.conf import settings
from django.urls import get_resolver, resolve

get_resolver().url_patterns
for app in %(apps)r:
    package = importlib.import_module(app)
    for module in pkgutil.walk_packages(package.__path__, prefix=app + "."):
        if ".migrations." not in module.name and not module.name.endswith("settings_test"):
            importlib.import_module(module.name)
print(json.dumps({
    "installed": settings.INSTALLED_APPS,
    "sandbox_app": apps.is_installed("sandbox"),
    "inbox_view": resolve("/admin/sandbox/inbox/").view_name,
    "verification_key": settings.ANYMAIL["SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"],
}))
"""


def sandbox_imports(source: str, *, filename: str = "<source>") -> list[str]:
    """Every `import sandbox...` / `from sandbox... import` in a module, as written."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n == "sandbox" or n.startswith("sandbox.")]
    return found


def test_the_import_finder_sees_every_spelling_of_a_sandbox_import() -> None:
    source = (
        "import sandbox\nimport os, sandbox.push as p\nfrom sandbox.demo import demo_seed\n"
        "def f():\n    from sandbox import inbox\n"
        "import sandboxed\nfrom delivery.sandbox_like import x\nfrom . import sandbox\n"
    )
    assert sandbox_imports(source) == ["sandbox", "sandbox.push", "sandbox.demo", "sandbox"]


def test_no_product_app_module_imports_the_sandbox() -> None:
    offenders: list[str] = []
    scanned = 0
    for app in PRODUCT_APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            scanned += 1
            relative = path.relative_to(ROOT)
            for name in sandbox_imports(path.read_text(), filename=str(relative)):
                offenders.append(f"{relative}: imports {name}")

    assert scanned > 100  # the walk really reached the apps
    assert offenders == []


def test_production_settings_load_and_pass_the_checks_without_the_sandbox_app(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "DJANGO_SETTINGS_MODULE": "continuity.settings",
        "CONTINUITY_VAR_DIR": str(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
        "ALLOWED_HOSTS": "continuity.example.com",
        # Outside the sandbox every secret is required (continuity/checks.py).
        **PRODUCTION_SECRETS,
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity"
        ),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    # The demo's key pair lying in var/ must not be picked up by production either.
    (tmp_path / "sandbox_sendgrid_events.pub").write_text("not-for-production")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    probe = run("-c", PRODUCTION_PROBE % {"apps": PRODUCT_APPS})
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert "sandbox" not in seen["installed"]
    assert not seen["sandbox_app"]
    assert seen["inbox_view"] != "sandbox:inbox"  # the admin's catch-all, not a sandbox page
    # The configured key, never the demo's public key lying in var/.
    assert (
        seen["verification_key"] == PRODUCTION_SECRETS["SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"]
    )

    check = run("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout
