"""WhatsApp deliveries sent one-to-one through the Graph fake with the real publisher."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from contacts.consent import consent_revoke
from contacts.models import Channel, Contact, Suppression, SuppressionReason
from delivery.dispatch import deliveries_enqueue, deliveries_send_chunk
from delivery.models import Delivery, Message
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from delivery.tasks import CHUNK_TASKS
from sandbox.base import Fault
from sandbox.graph import GraphFake
from tests.contacts.factories import evidence, granted_contact
from tests.workspaces import workspace_for_tests

pytestmark = [pytest.mark.django_db]

PHONE_ID = "106540352242922"


@pytest.fixture
def graph(settings: object) -> Iterator[GraphFake]:
    with GraphFake() as fake:
        settings.SOCIAL_GRAPH_BASE_URL = fake.url  # type: ignore[attr-defined]
        settings.WHATSAPP_PHONE_NUMBER_ID = PHONE_ID  # type: ignore[attr-defined]
        settings.WHATSAPP_ACCESS_TOKEN = "wa-test-token"  # type: ignore[attr-defined]
        settings.SOCIAL_READ_TIMEOUT_S = 0.5  # type: ignore[attr-defined]
        channel_sender.cache_clear()
        yield fake
        channel_sender.cache_clear()


def whatsapp_contacts(count: int, start: int = 0) -> list[Contact]:
    return [
        granted_contact(channel=Channel.WHATSAPP, phone=f"+3361234{start + n:04d}")
        for n in range(count)
    ]


def queued(contacts: list[Contact]) -> list[int]:
    message = Message.objects.create(
        workspace=workspace_for_tests(),
        name="wa",
        whatsapp_template="outage_notice",
        whatsapp_language="en_US",
    )
    rows = Delivery.objects.bulk_create(
        [
            Delivery(
                workspace_id=message.workspace_id,
                message=message,
                contact=c,
                channel=Channel.WHATSAPP,
            )
            for c in contacts
        ]
    )
    ids = [r.pk for r in rows]
    with TestCase.captureOnCommitCallbacks(execute=True):
        deliveries_enqueue(ids=ids, send=lambda channel, chunk: None)
    return ids


def statuses(ids: list[int]) -> list[str]:
    return list(Delivery.objects.filter(id__in=ids).order_by("id").values_list("status", flat=True))


def test_consented_contacts_get_one_template_each(graph: GraphFake) -> None:
    contacts = whatsapp_contacts(3)
    consent_revoke(
        contact=contacts[2], channel=Channel.WHATSAPP, purpose="marketing", evidence=evidence()
    )
    ids = queued(contacts)
    report = deliveries_send_chunk(channel=Channel.WHATSAPP, ids=ids)
    assert (report.claimed, report.sent) == (2, 2)
    assert statuses(ids) == [S.SENT, S.SENT, S.SUPPRESSED]
    posts = graph.posts_for(PHONE_ID)
    assert sorted(p.to for p in posts) == ["33612340000", "33612340001"]
    assert {p.text for p in posts} == {"outage_notice"}
    sent = Delivery.objects.filter(id__in=ids[:2])
    assert {d.provider for d in sent} == {"whatsapp"}
    assert {d.provider_message_id for d in sent} == {p.id for p in posts}
    # Repeated task: nothing left to claim, nothing sent twice.
    assert deliveries_send_chunk(channel=Channel.WHATSAPP, ids=ids).claimed == 0
    assert len(graph.posts_for(PHONE_ID)) == 2


def test_a_number_not_on_whatsapp_is_suppressed_and_the_rest_sent(graph: GraphFake) -> None:
    contacts = whatsapp_contacts(3, start=10)
    graph.fail(code=131026, remaining=1)
    ids = queued(contacts)
    report = deliveries_send_chunk(channel=Channel.WHATSAPP, ids=ids)
    assert (report.sent, report.suppressed) == (2, 1)
    assert statuses(ids) == [S.SUPPRESSED, S.SENT, S.SENT]
    suppression = Suppression.objects.get(contact=contacts[0], channel=Channel.WHATSAPP)
    assert suppression.reason == SuppressionReason.INVALID_ADDRESS


def test_an_outage_defers_the_chunk_after_one_call(graph: GraphFake) -> None:
    ids = queued(whatsapp_contacts(4, start=20))
    graph.fail(code=2)  # Graph's "service temporarily unavailable"
    report = deliveries_send_chunk(channel=Channel.WHATSAPP, ids=ids)
    assert (report.sent, report.deferred) == (0, 4)
    assert sorted(report.retry_ids) == sorted(ids)
    assert statuses(ids) == [S.QUEUED] * 4
    assert all(
        d.not_before and d.not_before > timezone.now() for d in Delivery.objects.filter(id__in=ids)
    )
    assert len(graph.requests_to(r"/messages$")) == 1


def test_an_expired_token_fails_the_chunk_after_one_call(
    graph: GraphFake, settings: object
) -> None:
    settings.WHATSAPP_ACCESS_TOKEN = "expired-token"  # type: ignore[attr-defined]
    ids = queued(whatsapp_contacts(3, start=30))
    report = deliveries_send_chunk(channel=Channel.WHATSAPP, ids=ids)
    assert report.failed == 3
    assert set(Delivery.objects.filter(id__in=ids).values_list("error_code", flat=True)) == {
        "reauth"
    }
    assert len(graph.requests_to(r"/messages$")) == 1


def test_an_unanswered_send_stays_unknown(graph: GraphFake) -> None:
    ids = queued(whatsapp_contacts(2, start=40))
    graph.set_fault(Fault(mode="timeout", after_accept=True, delay_s=2.0, remaining=1))
    report = deliveries_send_chunk(channel=Channel.WHATSAPP, ids=ids)
    assert (report.unknown, report.sent) == (1, 1)
    assert statuses(ids) == [S.UNKNOWN, S.SENT]


def test_the_sweeper_requeues_a_stale_whatsapp_row(settings: object) -> None:
    ids = queued(whatsapp_contacts(1, start=50))
    Delivery.objects.filter(id__in=ids).update(updated_at=timezone.now() - timedelta(hours=1))
    sent: list[tuple[str, str, list[int]]] = []
    result = deliveries_sweep(
        send=lambda channel, chunk: sent.append((channel, CHUNK_TASKS[channel], chunk))
    )
    assert sent == [("whatsapp", "delivery.whatsapp.send_chunk", ids)]
    assert result["requeued"] == 1


def test_a_channel_without_a_task_does_not_stop_the_sweep() -> None:
    ids = queued(whatsapp_contacts(1, start=60))
    Delivery.objects.filter(id__in=ids).update(updated_at=timezone.now() - timedelta(hours=1))

    def send(channel: str, chunk: list[int]) -> None:
        raise LookupError(channel)

    assert deliveries_sweep(send=send) == {"unknown": 0, "requeued": 0, "stranded": 1}


def test_every_channel_has_a_chunk_task() -> None:
    assert set(CHUNK_TASKS) == set(Channel.values)
