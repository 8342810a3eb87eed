"""An Alertmanager alert in, owned-channel messages out through real workers, then fail-back."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client

from campaigns.models import CampaignStatus, OutagePolicy, PostStatus, Reroute, SocialPost
from contacts.consent import consent_revoke
from contacts.models import Channel, Contact
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from outages.credentials import credential_issue
from outages.models import MonitorSource, OutageWindow, SourceKind
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.campaigns.reroute_factories import make_campaign
from tests.contacts.factories import evidence
from tests.delivery.test_materialize import contact_with
from tests.harness import ProcessHandle, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]
SAMPLES = Path(__file__).resolve().parent.parent / "outages" / "samples" / "alertmanager"
TOKEN = "e2e-alertmanager-token"


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    with TwilioFake(send_callbacks=False) as fake:
        yield fake


def _alert(kind: str) -> bytes:
    return (SAMPLES / f"{kind}.json").read_bytes()


def _post_alert(client: Client, kind: str) -> int:
    response = client.post(
        "/hooks/monitors/e2e-am/",
        data=_alert(kind),
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    return response.status_code


def _settled() -> bool:
    busy = [S.PLANNED, S.QUEUED, S.SENDING]
    return (
        Reroute.objects.exists()
        and not Reroute.objects.filter(status="planning").exists()
        and not Delivery.objects.filter(status__in=busy).exists()
    )


def test_an_alertmanager_alert_reroutes_each_consented_contact_once_then_fails_back(
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    source = MonitorSource.objects.create(
        name="e2e",
        slug="e2e-am",
        kind=SourceKind.ALERTMANAGER,
        mapping_rules=[{"match": "labels.service", "equals": "instagram", "network": "instagram"}],
    )
    credential_issue(source=source, secret=TOKEN)
    emailable = [contact_with(Channel.EMAIL, push=False) for _ in range(40)]
    texters = [contact_with(Channel.SMS, email=False, push=False) for _ in range(15)]
    silent = [contact_with(push=False) for _ in range(5)]
    revoked = emailable[:5]
    for contact in revoked:
        consent_revoke(contact=contact, channel="email", purpose="marketing", evidence=evidence())
    rerouted = make_campaign(networks=("instagram", "x"), fallback=("email", "sms"))
    held = make_campaign(networks=("instagram",), outage_policy=OutagePolicy.HOLD)
    celery_worker_process(
        env_extra={
            "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
            "SENDGRID_API_KEY": sendgrid_fake.api_key,
            "TWILIO_API_BASE_URL": twilio_fake.url,
            "DELIVERY_SMS_RATE_PER_S": "500",
            "REROUTE_QUIET_HOURS_SMS": "",
            "REROUTE_FREQUENCY_CAP_PER_DAY": "0",
            "REROUTE_SLICE_SIZE": "20",
            "DELIVERY_CHUNK_SIZE": "25",
        }
    )
    client = Client()
    assert _post_alert(client, "firing") == 200
    eventually(_settled, timeout=120)
    # The same alert again (Alertmanager repeats, HA pairs send twice): nothing new.
    for _ in range(3):
        assert _post_alert(client, "firing") == 200
    assert OutageWindow.objects.filter(network="instagram", state="open").count() == 1
    eventually(_settled, timeout=120)

    emails = Counter(p.to[0] for p in sendgrid_fake.personalizations)
    expected_emails = {str(c.email) for c in emailable[5:]}
    assert set(emails) == expected_emails
    assert max(emails.values()) == 1
    texts = Counter(m.to for m in twilio_fake.messages)
    assert set(texts) == {str(c.phone) for c in texters}
    assert max(texts.values()) == 1
    reached = set(Delivery.objects.filter(status=S.SENT).values_list("contact_id", flat=True))
    assert not reached & {c.pk for c in [*silent, *revoked]}
    statuses = dict(SocialPost.objects.filter(campaign=rerouted).values_list("network", "status"))
    assert statuses == {"instagram": PostStatus.REROUTED, "x": PostStatus.PENDING}
    assert SocialPost.objects.get(campaign=held).status == PostStatus.HELD

    assert _post_alert(client, "resolved") == 200
    eventually(lambda: SocialPost.objects.get(campaign=held).status != PostStatus.HELD, timeout=120)
    held.refresh_from_db()
    assert held.status in (CampaignStatus.SCHEDULED, CampaignStatus.PUBLISHING)
    assert not OutageWindow.objects.filter(state="open").exists()
    assert Contact.objects.count() == 60
    assert json.loads(_alert("resolved"))["status"] == "resolved"
