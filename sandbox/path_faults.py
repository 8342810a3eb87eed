"""Faults scoped to one route, for fakes whose clients make several calls per operation.

The base switches apply to whatever request comes next; Instagram's publish is three calls
(create container, poll, media_publish) and only the last one is ambiguous, so a test needs
"time out after accepting media_publish" while the first two answer normally. A scoped fault
acts inside dispatch: it answers an error or 429 instead of the route, or (timeout) runs the
route and then holds the answer past the client's read timeout, so the work is done and the
client never hears of it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from sandbox.base import FakeResponse, Fault


class PathFaults:
    def __init__(self) -> None:
        self._path_lock = threading.Lock()
        self._path_faults: list[tuple[str, re.Pattern[str], Fault]] = []

    def fault_on(
        self, method: str, pattern: str, fault: Fault | None = None, **kwargs: object
    ) -> None:
        """Apply ``fault`` to requests whose path matches ``pattern`` (``remaining`` counts)."""
        new = fault or Fault(**kwargs)  # type: ignore[arg-type]
        with self._path_lock:
            self._path_faults.append((method.upper(), re.compile(pattern), replace(new)))

    def clear_path_faults(self) -> None:
        with self._path_lock:
            self._path_faults.clear()

    def take_path_fault(self, method: str, path: str) -> Fault | None:
        with self._path_lock:
            for index, (fault_method, pattern, fault) in enumerate(self._path_faults):
                if fault_method != method or not pattern.search(path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._path_faults[index]
                return replace(fault)
        return None

    @staticmethod
    def answer_with_fault(fault: Fault, perform: Callable[[], FakeResponse]) -> FakeResponse:
        if fault.mode == "error":
            return FakeResponse(fault.status, fault.body or {"error": "sandbox fault"})
        if fault.mode == "rate_limit":
            return FakeResponse(
                429,
                fault.body or {"error": "rate limited"},
                {"Retry-After": str(fault.retry_after_s)},
            )
        if fault.mode == "timeout":
            response = perform() if fault.after_accept else FakeResponse(504, {"error": "late"})
            time.sleep(fault.delay_s or 5.0)
            return response
        if fault.mode == "slow":
            time.sleep(fault.delay_s)
        return perform()
