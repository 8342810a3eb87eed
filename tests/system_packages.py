"""Debian packages the suite runs for real (Prometheus Alertmanager, Chromium for Playwright).

`system_binary()` finds a package's binary; where it is missing and the run may install system
packages (as root with apt-get, as CI runs, unless CONTINUITY_TEST_APT=0), it installs the
package once, under a file lock so parallel test workers do not race dpkg. Elsewhere it says why
not and how to install it, for the test's skip message.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


def _found(binaries: Sequence[str]) -> str | None:
    for name in binaries:
        path = shutil.which(name)
        if path:
            return path
    return None


def _may_install() -> bool:
    # CI runs `make test` as root on a fresh machine and need not say it is CI: root with apt-get
    # installs, unless told not to (CONTINUITY_TEST_APT=0).
    wanted = os.environ.get("CONTINUITY_TEST_APT", "1")
    return wanted == "1" and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)


def _apt_install(packages: Sequence[str]) -> str:
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if _run(install).returncode == 0:
        return ""
    # The package lists may be missing or stale on a fresh machine: refresh once and retry.
    update = _run(["apt-get", "update", "-q"])
    second = _run(install)
    if second.returncode == 0:
        return ""
    return (update.stderr + second.stderr)[-500:]


def system_binary(*, packages: Sequence[str], binaries: Sequence[str]) -> tuple[str | None, str]:
    """The first of ``binaries`` found (installing ``packages`` where allowed), or None and why
    not (the skip message)."""
    hint = f"apt-get install -y {' '.join(packages)} (as root), or run with CONTINUITY_TEST_APT=1"
    path = _found(binaries)
    if path:
        return path, ""
    if not _may_install():
        return None, f"{' '.join(packages)} not installed: {hint}"
    lock_path = Path(tempfile.gettempdir()) / f"continuity-apt-{packages[0]}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = _found(binaries)  # another worker may have installed it while this one waited
        if path:
            return path, ""
        problem = _apt_install(packages)
    path = _found(binaries)
    if path:
        return path, ""
    return None, f"{' '.join(packages)} could not be installed: {problem or 'no binary after it'}"
