"""Run every benchmark script, print their JSON lines and keep them in var/bench/latest.jsonl.

`python -m benchmarks.run bench_delivery_email bench_crm_import` runs only the scripts named.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from benchmarks._common import (
    bench_scale,
    popen_tied,
    process_group_kill,
    redis_keys_delete,
    redis_namespace_fresh,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "latest.jsonl"
REQUIRED = {"bench", "value", "unit", "floor", "ratio_to_floor", "target"}


# Whole-command figures that clone the project and start the stack: no smoke value at small scale
# (tests/e2e/test_embedded_run.py runs the same path).
FULL_SCALE_ONLY = frozenset({"bench_newcomer_run"})


def scripts(scale: str = "full") -> list[Path]:
    here = Path(__file__).resolve().parent
    found = sorted(p for p in here.glob("bench_*.py"))
    return [p for p in found if scale == "full" or p.stem not in FULL_SCALE_ONLY]


def main(names: list[str]) -> int:
    chosen = scripts(bench_scale())
    unknown = sorted(set(names) - {p.stem for p in chosen})
    if unknown:
        print(f"no such benchmark at this scale: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if names:
        chosen = [p for p in chosen if p.stem in names]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # Queues, cache and pace keys of this run live under a Redis prefix of its own, so a worker
    # left over from an interrupted run (or a test run on the same Redis) takes none of its tasks.
    prefix = redis_namespace_fresh("bench")
    try:
        return _run_all(chosen)
    finally:
        # Tidying up must not hide the run's own outcome when Redis is gone.
        with contextlib.suppress(redis.RedisError):
            redis_keys_delete(
                url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), prefix=prefix
            )


def _run_all(chosen: list[Path]) -> int:
    lines: list[str] = []
    failures: list[str] = []
    for script in chosen:
        module = f"benchmarks.{script.stem}"
        started = time.perf_counter()
        proc = popen_tied(
            [sys.executable, "-m", module],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = proc.communicate()
        finally:
            process_group_kill(proc)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        elapsed = time.perf_counter() - started
        produced = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
        if result.returncode != 0 or not produced:
            failures.append(f"{module} exited {result.returncode}:\n{result.stderr[-2000:]}")
            continue
        for line in produced:
            missing = REQUIRED - set(json.loads(line))
            if missing:
                failures.append(f"{module} printed a line without {sorted(missing)}: {line}")
                continue
            print(line, flush=True)
            lines.append(line)
        print(f"# {module}: {elapsed:.1f}s", file=sys.stderr, flush=True)
    OUT.write_text("".join(f"{line}\n" for line in lines))
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
