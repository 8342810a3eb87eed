"""A worker SIGKILLed in the middle of planning a reroute: planning resumes, nobody is lost and
nobody gets a second message."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import pytest
from django.test import Client, override_settings

from campaigns.models import Reroute
from campaigns.reroute import reroute_stalled_resume
from contacts.models import Channel
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from outages.credentials import credential_issue
from outages.models import MonitorSource, SourceKind
from sandbox.sendgrid import SendGridFake
from tests.campaigns.reroute_factories import make_campaign
from tests.delivery.test_materialize import contact_with
from tests.e2e.test_reroute_e2e import SAMPLES, TOKEN
from tests.harness import ProcessHandle, eventually

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


@override_settings(REROUTE_STALLED_AFTER_S=1)
def test_a_worker_killed_mid_plan_resumes_and_sends_each_contact_once(
    sendgrid_fake: SendGridFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    source = MonitorSource.objects.create(
        name="chaos",
        slug="e2e-am",
        kind=SourceKind.ALERTMANAGER,
        mapping_rules=[{"match": "labels.service", "equals": "instagram", "network": "instagram"}],
    )
    credential_issue(source=source, secret=TOKEN)
    contacts = [contact_with(Channel.EMAIL, push=False) for _ in range(400)]
    make_campaign(fallback=("email",))
    env = {
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "REROUTE_QUIET_HOURS_SMS": "",
        "REROUTE_FREQUENCY_CAP_PER_DAY": "0",
        "REROUTE_SLICE_SIZE": "20",
        "REROUTE_FIRST_SLICE_SIZE": "20",
        "DELIVERY_CHUNK_SIZE": "20",
        # The sweep below treats a claim silent for 3 s as lost; live chunks beat faster.
        "DELIVERY_CLAIM_HEARTBEAT_S": "0.5",
    }
    # Sends are slow, so the single worker process is still planning when it dies.
    sendgrid_fake.set_fault(mode="slow", delay_s=0.3)
    worker = celery_worker_process(concurrency=1, env_extra=env)
    response = Client().post(
        "/hooks/monitors/e2e-am/",
        data=(SAMPLES / "firing.json").read_bytes(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    eventually(lambda: Delivery.objects.count() >= 60, timeout=120)
    worker.kill(signal.SIGKILL)
    worker.proc.wait(timeout=60)
    reroute = Reroute.objects.get()
    assert reroute.status == "planning"
    assert 0 < reroute.planned_through_contact_id < contacts[-1].pk

    sendgrid_fake.clear_fault()
    celery_worker_process(env_extra=env)

    def resumed_and_done() -> bool:
        # What beat's periodic tick does; the killed task's message is still unacknowledged.
        reroute_stalled_resume()
        from delivery.sweeper import deliveries_sweep
        from delivery.tasks import send_chunk_enqueue

        with override_settings(DELIVERY_CLAIM_STALE_S=3, DELIVERY_QUEUED_STALE_S=1):
            deliveries_sweep(send=send_chunk_enqueue)
        busy = Delivery.objects.filter(status__in=[S.PLANNED, S.QUEUED, S.SENDING]).exists()
        return Reroute.objects.get().status == "sending" and not busy

    eventually(resumed_and_done, timeout=180, interval=1.0)
    assert Delivery.objects.count() == len(contacts)
    assert set(Delivery.objects.values_list("contact_id", flat=True)) == {c.pk for c in contacts}
    received = Counter(p.to[0] for p in sendgrid_fake.personalizations)
    assert max(received.values()) == 1
    sent = Delivery.objects.filter(status=S.SENT).count()
    unknown = Delivery.objects.filter(status=S.UNKNOWN).count()
    # A request in flight when the worker died is unknown (never resent); all others were sent.
    assert sent + unknown == len(contacts)
    assert len(received) >= sent
    # One email request (a chunk of 20) at most was in flight in the one worker process.
    assert unknown <= 20
