"""Shared helpers for benchmark scripts: each script prints exactly one JSON line per figure."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def bench_scale() -> str:
    scale = os.environ.get("BENCH_SCALE", "full").strip().lower()
    if scale not in ("small", "full"):
        sys.exit(f"BENCH_SCALE={scale!r} must be 'small' or 'full'")
    return scale


def sized(*, full: int, small: int) -> int:
    return small if bench_scale() == "small" else full


def emit(
    bench: str,
    value: float,
    unit: str,
    *,
    target: str,
    floor: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Print one figure as the JSON line `make bench` collects."""
    ratio = round(value / floor, 3) if floor else None
    line = {
        "bench": bench,
        "value": round(value, 3),
        "unit": unit,
        "floor": None if floor is None else round(floor, 3),
        "ratio_to_floor": ratio,
        "target": target,
        "scale": bench_scale(),
        **extra,
    }
    print(json.dumps(line), flush=True)
    return line


def setup_django(settings_module: str = "continuity.settings_test") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()
