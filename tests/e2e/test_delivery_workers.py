"""Deliveries sent by real `celery worker` processes to the loopback fakes, and a worker killed."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import pytest
from django.test import override_settings

from contacts.consent import consent_revoke
from contacts.models import Contact
from delivery.dispatch import deliveries_enqueue
from delivery.models import Delivery, DeliveryClaim
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from delivery.tasks import send_chunk_enqueue
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import evidence, granted_contact
from tests.delivery.test_dispatch import make_message, plan
from tests.harness import ProcessHandle, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def _fake_env(fake: SendGridFake, worker_env: dict[str, str]) -> dict[str, str]:
    return {
        **worker_env,
        "SENDGRID_API_URL": f"{fake.url}/v3/",
        "SENDGRID_API_KEY": fake.api_key,
        "DELIVERY_CHUNK_SIZE": "100",
    }


def _settled() -> bool:
    return not Delivery.objects.filter(status__in=[S.QUEUED, S.SENDING]).exists()


def test_workers_send_exactly_one_email_per_consented_contact(
    sendgrid_fake: SendGridFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    message = make_message()
    contacts = [granted_contact() for _ in range(300)]
    revoked = contacts[::10]
    ids = plan(message, contacts)
    for contact in revoked:
        consent_revoke(contact=contact, channel="email", purpose="marketing", evidence=evidence())
    celery_worker_process(queues=["email"], env_extra=_fake_env(sendgrid_fake, worker_env))
    with override_settings(DELIVERY_CHUNK_SIZE=100):
        deliveries_enqueue(ids=ids)
    eventually(_settled, timeout=120)
    received = Counter(p.to[0] for p in sendgrid_fake.personalizations)
    expected = {str(c.email) for c in contacts} - {str(c.email) for c in revoked}
    assert set(received) == expected
    assert max(received.values()) == 1
    assert Delivery.objects.filter(status=S.SENT).count() == len(expected)
    assert Delivery.objects.filter(status=S.SUPPRESSED).count() == len(revoked)


@override_settings(DELIVERY_SENDING_STALE_S=1, DELIVERY_QUEUED_STALE_S=1)
def test_a_worker_killed_mid_chunk_leaves_no_duplicate_and_marks_the_ambiguous_unknown(
    sendgrid_fake: SendGridFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    message = make_message()
    contacts = [granted_contact() for _ in range(200)]
    ids = plan(message, contacts)
    # Live chunks beat often, so the sweep below may call a claim dead after 3 s, not 45.
    env = {**_fake_env(sendgrid_fake, worker_env), "DELIVERY_CLAIM_HEARTBEAT_S": "0.5"}
    # The first request hangs long enough for the kill to land while it is in flight.
    sendgrid_fake.set_fault(mode="slow", delay_s=3.0, remaining=1)
    worker = celery_worker_process(queues=["email"], concurrency=1, env_extra=env)
    with override_settings(DELIVERY_CHUNK_SIZE=100):
        deliveries_enqueue(ids=ids)
    eventually(lambda: Delivery.objects.filter(status=S.SENDING).count() == 100, timeout=120)
    # Claimed is not yet in flight: the kill must land once the chunk's request is leaving (its
    # claim names the rows), or the sweeper rightly requeues them instead (tests/chaos covers that).
    eventually(lambda: DeliveryClaim.objects.exclude(leaving=[]).exists(), timeout=120)
    worker.kill(signal.SIGKILL)
    worker.proc.wait(timeout=60)
    in_flight = set(Delivery.objects.filter(status=S.SENDING).values_list("id", flat=True))
    assert len(in_flight) == 100
    # The killed chunk's message sits unacknowledged in Redis until its visibility timeout; the
    # sweeper is what recovers the rows, from PostgreSQL, as beat would run it.
    celery_worker_process(queues=["email"], env_extra=env)

    # The restarted worker sends the other chunk first. Sweeping while it does would find its
    # rows `sending` for longer than the 1 s stale threshold on a busy machine and call them
    # unknown too, so the sweep (as beat would run it later) waits until only the killed
    # chunk's rows are left in flight.
    def others_sent() -> bool:
        # Stale `queued` rows are re-enqueued meanwhile (harmless: the claim dedupes), in case
        # the killed worker had taken the other chunk's message too.
        with override_settings(DELIVERY_SENDING_STALE_S=3600):
            deliveries_sweep(send=send_chunk_enqueue)
        return Delivery.objects.exclude(id__in=in_flight).filter(status=S.SENT).count() == 100

    eventually(others_sent, timeout=120, interval=1.0)
    assert set(Delivery.objects.filter(status=S.SENDING).values_list("id", flat=True)) == in_flight

    def swept_and_settled() -> bool:
        with override_settings(DELIVERY_CLAIM_STALE_S=3):
            deliveries_sweep(send=send_chunk_enqueue)
        return _settled()

    eventually(swept_and_settled, timeout=120, interval=1.0)
    unknown = set(Delivery.objects.filter(status=S.UNKNOWN).values_list("id", flat=True))
    assert unknown == in_flight
    assert Delivery.objects.filter(status=S.SENT).count() == 100
    received = Counter(p.to[0] for p in sendgrid_fake.personalizations)
    assert max(received.values()) == 1
    sent_addresses = set(
        Contact.objects.filter(deliveries__status=S.SENT).values_list("email", flat=True)
    )
    assert sent_addresses <= set(received)
