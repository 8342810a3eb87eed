"""kombu's filesystem transport with atomic message files (the embedded default's broker).

kombu writes a message file in place (open, lock, write) while a consumer moves and reads files
without taking the lock, so a worker can pick up a file that is still empty: the JSON decode then
fails, the message is already removed, and the worker exits (seen here with `make run` under a
web request and a worker polling at 50 ms). Writing under a name the consumer ignores and renaming
it into place makes each message appear whole or not at all; rename is atomic within a folder.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "continuityfs"


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made on first use rather than by settings: reading settings must have no side effect.
        for folder in (
            self.data_folder_in,
            self.data_folder_out,
            self.processed_folder,
            self.control_folder,
        ):
            os.makedirs(folder, exist_ok=True)

    # celery-types' stubs give AbstractChannel and filesystem.Channel different _put signatures;
    # this matches the filesystem one, which is the real base class.
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # The consumer only takes files named "<...>.<queue>.msg": ".part" hides this one.
        partial = f"{final}.part"
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES[SCHEME] = "continuity.broker_fs:Transport"
