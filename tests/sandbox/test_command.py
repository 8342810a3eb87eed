from __future__ import annotations

import socket
import sys

import requests

from tests.harness import ProcessHandle, child_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_sandbox_command_serves_every_fake_on_its_configured_port_until_stopped() -> None:
    names = ("SENDGRID", "FAILOVER_ESP", "TWILIO", "PUSH", "GRAPH", "X")
    ports = {name: _free_port() for name in names}
    env = child_env({f"SANDBOX_{name}_PORT": str(port) for name, port in ports.items()})
    handle = ProcessHandle([sys.executable, "manage.py", "sandbox"], env, "sandbox")
    try:
        handle.wait_for("sandbox ready", timeout=120)
        assert "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY=" in handle.output
        sendgrid = requests.post(
            f"http://127.0.0.1:{ports['SENDGRID']}/v3/mail/send",
            json={},
            headers={"Authorization": "Bearer sandbox-sendgrid-key"},
            timeout=5,
        )
        assert sendgrid.status_code == 400
        assert sendgrid.json()["errors"][0]["field"] == "personalizations"
        twilio = requests.post(
            f"http://127.0.0.1:{ports['TWILIO']}/2010-04-01/Accounts/AC1/Messages.json",
            timeout=5,
        )
        assert twilio.status_code == 401 and twilio.json()["code"] == 20003
        listing = requests.get(
            f"http://127.0.0.1:{ports['PUSH']}/__sandbox__/received", timeout=5
        ).json()
        assert listing["name"] == "push"
        failover = requests.get(
            f"http://127.0.0.1:{ports['FAILOVER_ESP']}/__sandbox__/received", timeout=5
        )
        assert failover.json()["name"] == "sendgrid"
    finally:
        handle.stop()
    assert "sandbox stopped" in handle.output
