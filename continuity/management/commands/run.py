"""`make run`: prepare the database and the demo, then run web, worker, beat and the sandbox.

The steps run in this one process (one Django start-up instead of four), and the process stays up
while the Procfile's processes run: in the embedded mode `manage.py` started the PostgreSQL server
for this command, so it must outlive every process that uses it and stop it only once they are
gone (continuity/embedded.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# Web, worker, beat and sandbox: each is a line in the Procfile, so production's process manager
# and this command read the same list.
PROCFILE = Path(settings.BASE_DIR) / "Procfile"


class Command(BaseCommand):
    help = "Migrate, seed the demo and run web + worker + beat + sandbox until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-demo", action="store_true", help="Skip the demo admin and the demo data."
        )

    def handle(self, *args: Any, no_demo: bool = False, **options: Any) -> None:
        call_command("preflight")
        call_command("migrate", interactive=False, verbosity=0)
        # The demo lives in the sandbox app, installed with the sandbox on (DEBUG, the default
        # of the embedded mode); this command never imports it.
        if not no_demo and apps.is_installed("sandbox"):
            call_command("ensure_demo_admin")
            call_command("seed_demo")
        sys.exit(self._procfile_run())

    def _procfile_run(self) -> int:
        honcho = Path(sys.executable).parent / "honcho"
        process = subprocess.Popen(  # noqa: S603 - our own venv's honcho and Procfile  # nosec B603
            [str(honcho), "--procfile", str(PROCFILE), "start"], cwd=settings.BASE_DIR
        )

        # Ctrl-C reaches every process of the terminal's group: honcho stops its children on its
        # own. This process only waits for that, so the database outlives its last client.
        def forward(signum: int, _frame: FrameType | None) -> None:
            if signum != signal.SIGINT and process.poll() is None:
                process.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        return process.wait()
