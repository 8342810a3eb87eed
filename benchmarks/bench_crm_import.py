"""crm.import_rows_per_s and crm.import_peak_rss_mb: `manage.py import_contacts` of a CSV into
PostgreSQL, in its own database (created, migrated, dropped), measured as a separate process so
its peak RSS is the command's alone. Two file sizes show whether memory stays flat."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks._common import bench_database_create, emit, popen_tied, sized

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def bench_database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark, migrated; dropped afterwards."""
    import psycopg

    url = bench_database_create(name)
    admin = urlunsplit(urlsplit(url)._replace(scheme="postgresql", path="/postgres"))
    try:
        yield url
    finally:
        # Close this process's own connections first (in-process benchmarks hold some).
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_csv(path: Path, rows: int, *, offset: int = 0) -> None:
    with path.open("w") as handle:
        handle.write(
            "external_id,email,phone,first_name,last_name,timezone,tags,"
            "consent_email_marketing,attr_city\n"
        )
        for i in range(offset, offset + rows):
            phone = f"+3361{i % 10_000_000:07d}" if i % 2 else ""
            handle.write(
                f"EXT-{i},person{i}@example.com,{phone},First{i},Last,Europe/Paris,"
                f"{'vip' if i % 10 == 0 else ''},{'yes' if i % 3 else ''},City{i % 100}\n"
            )


def run_import(url: str, path: Path) -> tuple[float, float, float, str]:
    """(wall seconds, command-reported seconds, peak RSS MB, output) of one import process."""
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "continuity.settings_test"}
    started = time.perf_counter()
    proc = popen_tied(
        [
            sys.executable,
            "manage.py",
            "import_contacts",
            str(path),
            # The workspace every migrated database has (continuity's migration makes it).
            "--workspace",
            "default",
            "--progress-every",
            "5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        sys.exit(f"import_contacts failed:\n{output}")
    match = re.search(r"done: (\d+) rows in ([\d.]+)s", output)
    assert match, output
    return wall, float(match.group(2)), usage.ru_maxrss / 1024, output


def main() -> None:
    rows = sized(full=100_000, small=2_000)
    small_rows = max(rows // 10, 200)
    with bench_database("continuity_bench_crm_import") as url, tempfile.TemporaryDirectory() as d:
        small_file, big_file = Path(d) / "small.csv", Path(d) / "big.csv"
        write_csv(small_file, small_rows, offset=5_000_000)
        write_csv(big_file, rows)
        _, _, rss_small, _ = run_import(url, small_file)
        wall, seconds, rss_big, output = run_import(url, big_file)
    assert f"{rows} created" in output, output
    emit(
        "crm.import_rows_per_s",
        rows / seconds,
        "rows/s",
        target=">= 10000 rows/s",
        rows=rows,
        import_s=round(seconds, 2),
        process_wall_s=round(wall, 2),
    )
    emit(
        "crm.import_peak_rss_mb",
        rss_big,
        "MB",
        target="flat: about the same for 10x the rows",
        rows=rows,
        rss_mb_at_tenth_rows=round(rss_small, 1),
    )


if __name__ == "__main__":
    main()
