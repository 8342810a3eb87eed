"""A message template saved before the template rules, sent by a real `celery worker`: its
deliveries fail with the reason, and the same chunk's other message still goes out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import override_settings

from delivery.dispatch import deliveries_enqueue
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from delivery.templating import TEMPLATE_INVALID
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_dispatch import make_message, plan
from tests.harness import ProcessHandle, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def test_a_worker_fails_a_stored_bad_template_and_sends_the_rest_of_the_chunk(
    sendgrid_fake: SendGridFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    # create() runs no field validator: this is a row from before the rules.
    broken = make_message(name="broken", email_html='<p>Hi</p>{% include "nope.html" %}')
    fine = make_message(name="fine")
    contacts = [granted_contact() for _ in range(5)]
    ids = plan(broken, contacts) + plan(fine, contacts)
    env = {
        **worker_env,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "DELIVERY_CHUNK_SIZE": "100",
    }
    worker = celery_worker_process(queues=["email"], env_extra=env)
    with override_settings(DELIVERY_CHUNK_SIZE=100):
        deliveries_enqueue(ids=ids)
    eventually(
        lambda: not Delivery.objects.filter(status__in=[S.QUEUED, S.SENDING]).exists(),
        timeout=120,
    )
    failed = Delivery.objects.filter(message=broken)
    assert {(d.status, d.error_code) for d in failed} == {(S.FAILED, TEMPLATE_INVALID)}
    assert all("{% include %} is not allowed" in d.error_text for d in failed)
    assert set(Delivery.objects.filter(message=fine).values_list("status", flat=True)) == {S.SENT}
    assert sorted(p.to[0] for p in sendgrid_fake.personalizations) == sorted(
        str(c.email) for c in contacts
    )
    assert "Traceback" not in worker.output
