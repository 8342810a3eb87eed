from __future__ import annotations

from collections.abc import Iterator

import pytest

from outages.credentials import source_cache_clear


@pytest.fixture(autouse=True)
def _fresh_source_cache() -> Iterator[None]:
    """Each test starts with an empty per-process source cache (ids are reused across tests)."""
    source_cache_clear()
    yield
    source_cache_clear()
