"""The admin's sandbox inbox: what each fake received, over HTTP, and its fault buttons."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
import requests
from django.test import Client

from sandbox.graph import GraphFake
from sandbox.sendgrid import SendGridFake

pytestmark = [pytest.mark.django_db]

INBOX = "/admin/sandbox/inbox/"
FAULT = "/admin/sandbox/inbox/fault/"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fakes(settings: object) -> Iterator[tuple[SendGridFake, GraphFake]]:
    with SendGridFake(api_key="k") as sendgrid, GraphFake() as graph:
        settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_API_URL": f"{sendgrid.url}/v3/"}  # type: ignore[attr-defined]
        settings.DELIVERY_EMAIL_FAILOVER_OPTIONS = {"api_url": f"{closed_port_url()}/v3/"}  # type: ignore[attr-defined]
        settings.TWILIO_API_BASE_URL = closed_port_url()  # type: ignore[attr-defined]
        settings.SANDBOX_PUSH_BASE_URL = closed_port_url()  # type: ignore[attr-defined]
        settings.SOCIAL_GRAPH_BASE_URL = graph.url  # type: ignore[attr-defined]
        settings.SOCIAL_X_BASE_URL = "https://api.x.com"  # type: ignore[attr-defined]
        yield sendgrid, graph


def test_the_inbox_shows_what_each_fake_received(
    admin_client: Client, fakes: tuple[SendGridFake, GraphFake]
) -> None:
    _, graph = fakes
    requests.post(
        f"{graph.url}/v24.0/123/messages",
        json={
            "messaging_product": "whatsapp",
            "to": "33612345678",
            "type": "template",
            "template": {"name": "hello_inbox", "language": {"code": "en"}},
        },
        headers={"Authorization": "Bearer t"},
        timeout=5,
    )
    page = admin_client.get(INBOX + "?fake=graph")
    assert page.status_code == 200
    html = page.content.decode()
    inboxes = {i.endpoint.name: i for i in page.context["inboxes"]}
    assert inboxes["graph"].running and inboxes["graph"].count == 1
    assert "hello_inbox" in html
    assert inboxes["sendgrid"].running and inboxes["sendgrid"].count == 0
    assert not inboxes["twilio"].running and "not running" in inboxes["twilio"].detail
    assert not inboxes["push"].running
    assert "real provider" in inboxes["x"].detail
    assert html.count("not running") >= 3


def test_the_changelist_links_to_the_inbox(admin_client: Client) -> None:
    assert INBOX in admin_client.get("/admin/delivery/delivery/").content.decode()


def test_fault_buttons_switch_the_fake(
    admin_client: Client, fakes: tuple[SendGridFake, GraphFake]
) -> None:
    sendgrid, _ = fakes
    response = admin_client.post(FAULT, {"fake": "sendgrid", "mode": "error"}, follow=True)
    assert response.status_code == 200
    assert sendgrid.fault.mode == "error"
    assert "fault mode error" in response.content.decode()
    admin_client.post(FAULT, {"fake": "sendgrid", "mode": "ok"})
    assert sendgrid.fault.mode == "ok"
    refused = admin_client.post(FAULT, {"fake": "x", "mode": "error"}, follow=True)
    assert "real provider" in refused.content.decode()
    bad = admin_client.post(FAULT, {"fake": "sendgrid", "mode": "refuse"}, follow=True)
    assert "Mode must be one of" in bad.content.decode()
    assert admin_client.get(FAULT).status_code == 405


def test_the_inbox_needs_an_admin_login(client: Client) -> None:
    assert client.get(INBOX).status_code == 302
    assert client.post(FAULT, {"fake": "sendgrid", "mode": "error"}).status_code == 302


def _send(sendgrid: SendGridFake, recipients: list[str], html: str) -> None:
    payload = {
        "from": {"email": "shop@example.com"},
        "subject": "Hello :name",
        "content": [
            {"type": "text/plain", "value": "Hi :name"},
            {"type": "text/html", "value": html},
        ],
        "personalizations": [
            {"to": [{"email": r}], "substitutions": {":name": r.split("@")[0]}} for r in recipients
        ],
    }
    answer = requests.post(
        f"{sendgrid.url}/v3/mail/send",
        json=payload,
        headers={"Authorization": "Bearer k"},
        timeout=5,
    )
    assert answer.status_code == 202


def test_the_inbox_lists_messages_not_requests_whole_and_readable(
    admin_client: Client, fakes: tuple[SendGridFake, GraphFake], monkeypatch: pytest.MonkeyPatch
) -> None:
    sendgrid, _ = fakes
    long_html = "<p>Hi :name</p>" + "<p>filler</p>" * 600 + "<p>THE-END-MARKER</p>"
    _send(sendgrid, ["ana@example.com", "bo@example.com", "cy@example.com"], long_html)
    # A request the fake refuses (no such route) is not a message.
    assert requests.get(f"{sendgrid.url}/v3/nothing", timeout=5).status_code == 404
    monkeypatch.setattr("sandbox.admin.PER_PAGE", 2)
    first = admin_client.get(INBOX + "?fake=sendgrid")
    html = first.content.decode()
    assert first.context["current"].count == 3
    assert "3 messages" in html
    assert [m.to for m in first.context["current"].items] == ["cy@example.com", "bo@example.com"]
    assert "<strong>Hello cy</strong>" in html
    # The whole HTML (well past 4 KB), rendered for its recipient, in a sandboxed frame.
    assert len(long_html) > 4096
    assert 'sandbox="" title="The email as the recipient sees it" srcdoc="&lt;p&gt;Hi cy' in html
    assert "THE-END-MARKER" in html
    assert re.search(r"<td>20\d\d-\d\d-\d\d \d\d:\d\d:\d\d</td>", html)
    assert "page 1 of 2" in html
    second = admin_client.get(INBOX + "?fake=sendgrid&page=2")
    assert [m.to for m in second.context["current"].items] == ["ana@example.com"]
    assert admin_client.get(INBOX + "?fake=nosuch&page=-1").status_code == 200
