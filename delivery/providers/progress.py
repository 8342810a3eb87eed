"""How a sender reports progress while it sends, so `unknown` stays bounded by what was in flight.

A chunk can take minutes (1,000 SMS at 10/s) and a worker can die at any moment in it. A sender
that makes many requests tells its caller, through a ``SendProgress``:

- ``leaving(ids)`` right before the request for those deliveries is written. The caller records
  it durably and answers which ids are still this chunk's to send (the sweeper may have taken a
  row back from a chunk it believed dead). Only a row recorded as leaving can become `unknown`
  when its worker is lost; every other claimed row goes back to the queue.
- ``settled(outcomes)`` as soon as answers are known, so a provider id is written while the
  chunk is still running, not only at its end. A sender that makes one request at a time (SMS)
  may use ``settle_later(outcomes)`` instead: the answers are then written together with the
  next ``leaving`` record (one round trip for both), or by ``flush()``, which it calls before it
  waits for anything (a slot of the pace, a back-off). Either way an answer is written before
  the next request leaves, and before the sender sits idle.

Either may raise ``SendInterrupted``: something the send depends on failed before the next
request left (the pace in Redis, the progress record in PostgreSQL). The sender stops there and
lets it propagate; the caller puts the rows that never left back in the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Only for annotations: the pace (delivery/ratelimit.py) imports this module, and it must
    # stay importable without Django (benchmarks and tests run it in bare processes).
    from delivery.providers.base import Outcome


class SendInterrupted(Exception):
    """The send stopped before the next request left: nothing more was sent."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class SendProgress(Protocol):
    def leaving(self, delivery_ids: Sequence[int]) -> Sequence[int]:
        """Record that requests for these deliveries are about to leave; returns those still
        ours to send (the others must be skipped). Raises SendInterrupted if it cannot."""
        ...

    def settled(self, outcomes: Sequence[Outcome]) -> None:
        """Record these answers now. Raises SendInterrupted if they cannot be written."""
        ...

    def settle_later(self, outcomes: Sequence[Outcome]) -> None:
        """Record these answers with the next ``leaving`` record, or at ``flush()``."""
        ...

    def flush(self) -> None:
        """Write the answers handed to ``settle_later`` now."""
        ...


class NoProgress:
    """For callers that only want the outcomes list (tests, benchmarks, the sandbox)."""

    def leaving(self, delivery_ids: Sequence[int]) -> Sequence[int]:
        return list(delivery_ids)

    def settled(self, outcomes: Sequence[Outcome]) -> None:
        return None

    def settle_later(self, outcomes: Sequence[Outcome]) -> None:
        return None

    def flush(self) -> None:
        return None


NO_PROGRESS = NoProgress()
# The outcome of a message whose row is no longer this chunk's: nothing was sent, and the write
# that records it matches nothing (it is guarded by the chunk's claim).
CLAIM_LOST = "claim_lost"
CLAIM_LOST_TEXT = "the row is no longer this chunk's (the sweeper took it back): not sent"
