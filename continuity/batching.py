"""Helpers for long batch jobs in one Python process: a producer run one batch ahead in a forked
child, and garbage collection once per batch instead of every few hundred allocations.

`read_ahead`: run a CPU-bound producer in a forked child so that it overlaps with the consumer.

`import_contacts` parses a CSV (pure Python, ~15 us a row) and writes it to PostgreSQL (waiting
on the server about half the time). In one process the two alternate; with the parser in a child
the next batch is parsed while the database writes the current one, and the machine's second core
does the work that the waits used to leave idle.

The child is forked, not spawned: it inherits the loaded Django and starts in milliseconds. It must
leave the database connections it inherits alone: a query would interleave with the parent's on
the same socket, and a close() tells the server to end the parent's session (psycopg already skips
that when a connection object is merely freed after a fork). The producer only reads and computes.
Items cross one pipe; a send blocks until the consumer takes the item, so at most one item waits
beside the one being consumed and the one being produced: memory stays flat whatever the file's
size.

`collection_per_batch`: a batch of parsed rows is tens of thousands of small acyclic objects.
CPython's automatic collector runs every 700 new objects and, every few batches, re-scans the whole
heap (Django's ~120,000 objects included): measured here, that was a fifth of the parse time and
four fifths of the time to unpickle a batch. With the startup heap frozen and one collection per
batch, cycles are still freed every batch (memory stays flat) at ~5 ms a batch.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import pickle
import sys
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TypeVar

T = TypeVar("T")

_ITEM, _END, _RAISED = "item", "end", "raised"


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@contextlib.contextmanager
def read_ahead(
    produce: Callable[[], Iterator[T]], *, in_child: bool = True
) -> Iterator[Iterator[T]]:
    """The items of `produce()`, computed in a forked child one item ahead of the consumer.
    An exception raised by the producer is raised again here, by the consumer's next item.
    Without fork (or with in_child=False) the producer simply runs in this process."""
    if not (in_child and fork_available()):
        yield produce()
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # The child flushes the standard streams when it exits: anything still buffered here at fork
    # time would be printed twice.
    sys.stdout.flush()
    sys.stderr.flush()
    child = context.Process(target=_produce_into, args=(produce, sender), daemon=True)
    child.start()
    # Only the child may hold the sending end open: its exit then reads here as end of file.
    sender.close()
    try:
        yield _received(receiver, child)
    finally:
        receiver.close()
        if child.is_alive():
            # The consumer stopped early (an error, or Ctrl-C): the producer's work is moot.
            child.terminate()
        child.join()


@contextlib.contextmanager
def collection_per_batch() -> Iterator[Callable[[], int]]:
    """Automatic collection off and the heap so far frozen (never scanned again) for the block;
    call the yielded function between batches. Both are undone on exit."""
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield gc.collect
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _received(receiver: Connection, child: BaseProcess) -> Iterator[T]:
    while True:
        try:
            kind, payload = receiver.recv()
        except EOFError:
            child.join()
            raise RuntimeError(
                f"the read-ahead process stopped before its end (exit code {child.exitcode})"
            ) from None
        if kind == _END:
            return
        if kind == _RAISED:
            raise payload
        yield payload


def _produce_into(produce: Callable[[], Iterator[T]], sender: Connection) -> None:
    # Objects inherited from the parent stay out of this process's collections (scanning them
    # would also copy every page they sit on); the process exits when done, so nothing is undone.
    gc.freeze()
    gc.disable()
    try:
        for item in produce():
            sender.send((_ITEM, item))
            del item
            gc.collect()
        sender.send((_END, None))
    except BrokenPipeError:
        return  # the consumer has gone; it reports its own error
    except BaseException as exc:  # every failure is the consumer's to report
        sender.send((_RAISED, _transportable(exc)))


def _transportable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, back in our own process  # nosec B301
    except Exception:  # one that cannot cross the pipe as itself
        return RuntimeError(
            "the read-ahead process failed:\n" + "".join(traceback.format_exception(exc))
        )
    return exc
