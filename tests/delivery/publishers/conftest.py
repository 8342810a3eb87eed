from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each network's contract class lists its provider error cases; one test per case."""
    if "error_case" in metafunc.fixturenames and metafunc.cls is not None:
        cases = sorted(getattr(metafunc.cls, "error_cases", {}))
        metafunc.parametrize("error_case", cases)
