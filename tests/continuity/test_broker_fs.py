"""The embedded broker never hands a consumer a message file that is still being written."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
from kombu import Connection

import continuity.broker_fs  # noqa: F401 - registers the scheme


def _connection(folder: Path) -> Connection:
    return Connection(
        "continuityfs://localhost//",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.01,
        },
    )


def test_a_message_file_still_being_written_is_invisible_until_complete(tmp_path: Path) -> None:
    (tmp_path / "control").mkdir()
    with _connection(tmp_path) as conn:
        probe = conn.SimpleQueue("probe")
        # Another process is half-way through writing a message: kombu's own writer would have
        # created it under its final name, empty, and a consumer would fail on it.
        (tmp_path / "1_half.probe.msg.part").write_bytes(b'{"body": "tru')
        probe.put({"n": 1})
        message = probe.get(timeout=30)
        assert message.payload == {"n": 1}
        message.ack()
        with pytest.raises(queue.Empty):
            probe.get(timeout=0.2)
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".probe.msg")]
        probe.close()
