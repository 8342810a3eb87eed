from __future__ import annotations

import gc
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from continuity.batching import collection_per_batch, fork_available, read_ahead

needs_fork = pytest.mark.skipif(not fork_available(), reason="read_ahead forks")


def _squares() -> Iterator[tuple[int, int]]:
    for i in range(5):
        yield i, i * i


@needs_fork
def test_read_ahead_yields_the_items_made_in_another_process() -> None:
    def produce() -> Iterator[tuple[int, int]]:
        for _, square in _squares():
            yield os.getpid(), square

    with read_ahead(produce) as items:
        received = list(items)
    assert [square for _, square in received] == [0, 1, 4, 9, 16]
    assert {pid for pid, _ in received} != {os.getpid()}


def test_read_ahead_in_process_yields_the_same_items() -> None:
    with read_ahead(_squares, in_child=False) as items:
        assert list(items) == list(_squares())


@needs_fork
def test_an_exception_in_the_producer_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise ValueError("line 3 is not CSV")

    received: list[int] = []
    with pytest.raises(ValueError, match="line 3 is not CSV"), read_ahead(produce) as items:
        received.extend(items)
    assert received == [1]


@needs_fork
def test_a_producer_that_dies_is_reported_not_waited_for_forever() -> None:
    def produce() -> Iterator[int]:
        yield 1
        os.kill(os.getpid(), signal.SIGKILL)
        yield 2

    with pytest.raises(RuntimeError, match="stopped before its end"), read_ahead(produce) as items:
        list(items)


@needs_fork
def test_a_consumer_that_stops_early_ends_the_producer(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def produce() -> Iterator[int]:
        pid_file.write_text(str(os.getpid()))
        i = 0
        while True:
            yield i
            i += 1

    with read_ahead(produce) as items:
        assert next(items) == 0
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_collection_per_batch_collects_on_demand_and_restores_the_collector() -> None:
    assert gc.isenabled()
    with collection_per_batch() as collect:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert collect() >= 1
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
