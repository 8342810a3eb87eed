"""`make run`'s Ctrl-C: every process stops in order, the worker is given time to finish, nothing
is killed, and the command exits 0 (so make prints no "Error 130")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A process that notes when SIGTERM reached it and, after `linger` seconds, that it finished.
FAKE = """
import signal, sys, time
name, linger, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def note(what):
    with open(log, "a") as f:
        f.write(f"{time.monotonic():.3f} {name} {what}\\n")
def term(*_):
    note("term")
    time.sleep(linger)
    note("done")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
signal.signal(signal.SIGINT, lambda *_: note("sigint"))
print(name, "ready", flush=True)
while True:
    time.sleep(0.05)
"""

SUPERVISE = """
import sys
from pathlib import Path
import django
django.setup()
from continuity.management.commands.run import procfile_supervise
sys.exit(procfile_supervise(procfile=Path(sys.argv[1]), cwd=Path(sys.argv[2])))
"""


def _events(log: Path) -> list[tuple[str, str]]:
    lines = log.read_text().split("\n") if log.exists() else []
    return [(p[1], p[2]) for p in (line.split() for line in lines) if len(p) == 3]


def test_ctrl_c_stops_web_and_beat_then_lets_the_worker_finish_then_the_sandbox(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text(FAKE)
    log = tmp_path / "events.log"
    lines = [
        ("sandbox", 0.1),
        ("worker", 1.5),  # a warm shutdown that takes a while: it must not be killed
        ("beat", 0.1),
        ("web", 0.1),
    ]
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "".join(
            f"{name}: {sys.executable} {fake} {name} {linger} {log}\n" for name, linger in lines
        )
    )
    run = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, str(procfile), str(tmp_path)],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    assert run.stdout is not None
    ready: set[str] = set()
    deadline = time.monotonic() + 60
    while len(ready) < 4 and time.monotonic() < deadline:
        line = run.stdout.readline()
        if line.rstrip().endswith("ready"):
            ready.add(line.split("|")[0].split()[1])
    assert ready == {"sandbox", "worker", "beat", "web"}
    # What the terminal does on Ctrl-C: SIGINT to the whole foreground group.
    os.killpg(run.pid, signal.SIGINT)
    output = run.communicate(timeout=60)[0]
    assert run.returncode == 0, output
    events = _events(log)
    assert [e for e in events if e[1] == "sigint"] == []  # children are not the terminal's
    terms = [name for name, what in events if what == "term"]
    assert terms == ["web", "beat", "worker", "sandbox"], events
    assert ("worker", "done") in events  # finished on its own, never killed
    assert events.index(("worker", "done")) < events.index(("sandbox", "term"))
    assert "killing" not in output


def test_a_process_that_dies_stops_the_others_and_its_code_is_returned(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"web: {sys.executable} -c 'import time; time.sleep(30)'\n"
        f"worker: {sys.executable} -c 'import sys; sys.exit(3)'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", SUPERVISE, str(procfile), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 3, run.stdout
    assert "worker ended (exit 3): stopping the others" in run.stdout
