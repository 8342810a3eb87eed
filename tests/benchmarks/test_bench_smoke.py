"""`make bench` at BENCH_SCALE=small: every script runs and prints well-formed figures.

A correctness smoke, not a speed test: its time limit only stops a hung run, and the run's
processes die with it (benchmarks/_common.py popen_tied) instead of outliving the test. One test
per script, so that the parallel test processes share them out; one more runs `benchmarks.run`
itself, as `make bench` does, on a single script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from benchmarks._common import popen_tied, process_group_kill
from benchmarks.run import OUT, REQUIRED, scripts
from tests.harness import ROOT, child_env

HUNG_AFTER_S = 900


def _run_small(argv: list[str], *, namespace: str) -> tuple[list[dict[str, Any]], str]:
    run = popen_tied(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        # A Redis namespace of the script's own inside this test process's, which the run's
        # closing clean-up deletes: a script purging its queues touches no test's tasks.
        env=child_env(
            {
                "BENCH_SCALE": "small",
                "REDIS_KEY_PREFIX": f"{settings.REDIS_KEY_PREFIX}{namespace}:",
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=HUNG_AFTER_S)
    finally:
        process_group_kill(run)
    assert run.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert lines, stderr
    for line in lines:
        assert set(line) >= REQUIRED, line
        assert line["scale"] == "small"
        assert isinstance(line["value"], int | float)
    return lines, stdout


@pytest.mark.timeout(HUNG_AFTER_S + 120)
@pytest.mark.parametrize("script", scripts("small"), ids=lambda p: p.stem)
def test_each_benchmark_runs_small_and_prints_well_formed_figures(script: Path) -> None:
    lines, _ = _run_small([f"benchmarks.{script.stem}"], namespace=script.stem)
    if script.stem == "bench_embedded_broker":
        embedded = next(x for x in lines if x["bench"] == "continuity.embedded_tasks_per_s")
        assert embedded["completed"] == embedded["tasks"]
        assert embedded["duplicates"] == 0


@pytest.mark.timeout(HUNG_AFTER_S + 120)
def test_make_bench_keeps_the_figures_it_prints() -> None:
    lines, stdout = _run_small(["benchmarks.run", "bench_crm_segment_count"], namespace="bench-run")
    assert {line["bench"].split(".")[0] for line in lines} == {"crm"}
    assert OUT.read_text().splitlines() == [ln for ln in stdout.splitlines() if ln]


def test_make_bench_names_a_benchmark_it_does_not_have() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "bench_no_such_thing"],
        cwd=ROOT,
        env=child_env({"BENCH_SCALE": "small"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert "bench_no_such_thing" in run.stderr
