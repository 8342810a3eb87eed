"""A listener that never accepts: connections to it hang in the SYN stage, so clients see a
connect timeout. That is the "request never left" case (a dead host, a dropped route), which a
FakeServer cannot produce because it always accepts."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Self


class Blackhole:
    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: socket.socket | None = None
        self._fillers: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind((self.host, 0))
        # Backlog 0 and a few unaccepted connections fill the accept queue; the kernel then
        # drops further SYNs, so a new connect neither succeeds nor is refused.
        server.listen(0)
        self._server = server
        self.port = server.getsockname()[1]
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((self.host, self.port))
            self._fillers.append(filler)
        time.sleep(0.05)
        return self

    def stop(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
