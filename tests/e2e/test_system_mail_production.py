"""A double opt-in in production settings (#19): DEBUG and the sandbox off, no EMAIL_BACKEND, every
secret set. The request is answered by gunicorn, the confirmation leaves from a real Celery worker
through the email channel and reaches the SendGrid fake over HTTP on loopback (never SMTP on
localhost:25); SendGrid's first answer is a 429, which the task retries after a back-off, and the
person's consent stays pending until they confirm."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from contacts.models import Channel, Consent, ConsentState
from continuity.models import Role
from delivery.models import Delivery, DeliveryKind
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import make_contact
from tests.e2e.test_attacks_production import GUNICORN, production_env
from tests.harness import ProcessHandle, eventually, start_worker
from tests.workspaces import make_api_key, make_member, make_workspace

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def production(
    worker_env: dict[str, str],
) -> Iterator[tuple[str, SendGridFake, ProcessHandle]]:
    env = production_env(worker_env)
    env.pop("EMAIL_BACKEND", None)
    with SendGridFake(api_key=env["SENDGRID_API_KEY"]) as fake:
        env.update(
            {
                "SENDGRID_API_URL": f"{fake.url}/v3/",
                "DELIVERY_RETRY_BASE_S": "0.5",
                "CONTACTS_PUBLIC_BASE_URL": "https://news.example.com",
            }
        )
        web = ProcessHandle(
            [GUNICORN, "continuity.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"],
            env,
            "gunicorn",
        )
        worker = None
        try:
            line = web.wait_for("Listening at:", timeout=90)
            port = re.search(r"127\.0\.0\.1:(\d+)", line)
            assert port, line
            worker = start_worker(env=env, queues=["email"], concurrency=1, pool="solo")
            yield f"http://127.0.0.1:{port[1]}", fake, worker
        finally:
            if worker is not None:
                worker.stop()
            web.stop()
        assert "Traceback" not in web.output, web.output[-4000:]


@pytest.mark.timeout(300)
def test_a_double_opt_in_reaches_sendgrid_through_a_worker_in_production_settings(
    production: tuple[str, SendGridFake, ProcessHandle],
) -> None:
    base, sendgrid, worker = production
    workspace = make_workspace(slug="doi-prod")
    owner = make_member(workspace=workspace, role=Role.OWNER)
    key = make_api_key(user=owner, workspace=workspace)
    contact = make_contact(workspace=workspace, email="prod.doi@example.org", locale="it")
    sendgrid.set_fault(mode="rate_limit", retry_after_s=1, remaining=1)

    response = requests.post(
        f"{base}/api/v1/contacts/{contact.pk}/consent/",
        json={"channel": "email", "action": "double_opt_in", "source": "form"},
        headers={"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"},
        timeout=30,
    )
    assert response.status_code == 200, response.text

    eventually(lambda: len(sendgrid.personalizations) == 1, timeout=60)
    [mail] = sendgrid.personalizations
    assert mail.to == ["prod.doi@example.org"]
    assert mail.subject == "Confermi la Sua iscrizione"
    assert "https://news.example.com/" in mail.rendered("text/plain")
    eventually(lambda: Delivery.objects.filter(contact=contact, status=S.SENT).exists(), timeout=30)
    row = Delivery.objects.get(contact=contact)
    assert (row.kind, row.attempt, row.provider) == (DeliveryKind.DOUBLE_OPT_IN, 2, "sendgrid")
    timeline = list(row.events.order_by("occurred_at", "id").values_list("status", flat=True))
    assert timeline == [S.QUEUED, S.SENDING, S.QUEUED, S.SENDING, S.SENT]
    # The 429 came first; the task put the row back and sent it on its retry.
    assert row.events.filter(status=S.QUEUED, detail="retry: sendgrid_429").exists()
    consent = Consent.objects.get(contact=contact, channel=Channel.EMAIL)
    assert consent.state == ConsentState.PENDING
    assert "system mail" in worker.output
