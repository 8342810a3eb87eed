"""`make bench` at BENCH_SCALE=small: every script runs and prints well-formed figures."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.run import OUT, REQUIRED, scripts
from tests.harness import ROOT, child_env


def test_every_benchmark_runs_small_and_prints_one_json_line_per_figure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run"],
        cwd=ROOT,
        env=child_env({"BENCH_SCALE": "small"}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) >= len(scripts("small"))
    for line in lines:
        assert set(line) >= REQUIRED, line
        assert line["scale"] == "small"
        assert isinstance(line["value"], int | float)
    assert OUT.read_text().splitlines() == result.stdout.splitlines()
    embedded = next(x for x in lines if x["bench"] == "continuity.embedded_tasks_per_s")
    assert embedded["completed"] == embedded["tasks"]
    assert embedded["duplicates"] == 0
