#!/usr/bin/env python
import os
import signal
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "continuity.settings")
    from django.core.management import execute_from_command_line

    from continuity.embedded import (
        EmbeddedUnavailable,
        embedded_server,
        embedded_wanted,
        local_state_prepare,
    )
    from continuity.env import env_bool, env_file_load, env_var_dir

    base_dir = Path(__file__).resolve().parent
    env_file_load(base_dir)
    var_dir = env_var_dir(base_dir)
    embedded = embedded_wanted()
    # Local work (the embedded mode, or DEBUG on) keeps its own secret key in var/; settings only
    # read it, and production (DEBUG off) never does.
    if env_bool("DEBUG", default=embedded):
        local_state_prepare(var_dir)
    if not embedded:
        execute_from_command_line(sys.argv)
        return
    # The embedded mode: the command runs against the PostgreSQL in var/, started for it if no
    # other command (`manage.py run`, usually) keeps it running already. A terminal closed or a
    # plain `kill` must still leave through the block below, so the server is not left behind.
    for name in ("SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda number, _frame: sys.exit(128 + number))
    try:
        with embedded_server(var_dir):
            execute_from_command_line(sys.argv)
    except EmbeddedUnavailable as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
