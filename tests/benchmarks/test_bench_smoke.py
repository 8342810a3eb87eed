"""`make bench` at BENCH_SCALE=small: every script runs and prints well-formed figures.

A correctness smoke, not a speed test: its time limit only stops a hung run, and the run's
processes die with it (benchmarks/_common.py popen_tied) instead of outliving the test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks._common import popen_tied, process_group_kill
from benchmarks.run import OUT, REQUIRED, scripts
from tests.harness import ROOT, child_env

HUNG_AFTER_S = 1500


@pytest.mark.timeout(HUNG_AFTER_S + 120)
def test_every_benchmark_runs_small_and_prints_one_json_line_per_figure() -> None:
    run = popen_tied(
        [sys.executable, "-m", "benchmarks.run"],
        cwd=ROOT,
        # benchmarks.run picks a Redis namespace of its own, apart from this test run's.
        env=child_env({"BENCH_SCALE": "small"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=HUNG_AFTER_S)
    finally:
        process_group_kill(run)
    assert run.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert len(lines) >= len(scripts("small"))
    for line in lines:
        assert set(line) >= REQUIRED, line
        assert line["scale"] == "small"
        assert isinstance(line["value"], int | float)
    assert OUT.read_text().splitlines() == stdout.splitlines()
    embedded = next(x for x in lines if x["bench"] == "continuity.embedded_tasks_per_s")
    assert embedded["completed"] == embedded["tasks"]
    assert embedded["duplicates"] == 0
