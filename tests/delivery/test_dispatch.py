"""Claim, send and record: the Delivery state machine against the real SendGrid fake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client, TestCase, override_settings
from django.utils import timezone

from contacts.consent import consent_revoke, suppression_add
from contacts.models import Channel, ConsentSource, Contact, PushSubscription, SuppressionReason
from delivery.claim import deliveries_claim
from delivery.dispatch import deliveries_enqueue, deliveries_retry_failed, deliveries_send_chunk
from delivery.models import Delivery, DeliveryEvent, DeliveryKind, Message
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from delivery.sweeper import deliveries_sweep
from delivery.transitions import IllegalTransition, deliveries_transition
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import evidence, granted_contact
from tests.workspaces import workspace_for_tests

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def make_message(**overrides: object) -> Message:
    values: dict[str, object] = {
        "workspace": workspace_for_tests(),
        "name": "Instagram is down: here is our offer",
        "email_subject": "Hello {{ first_name }}",
        "email_html": "<p>Hi {{ first_name }}, 20% off today.</p>",
        "email_text": "Hi {{ first_name }}, 20% off today.",
        "sms_text": "Hi {{ first_name }}, 20% off today.",
    }
    values.update(overrides)
    return Message.objects.create(**values)


def plan(message: Message, contacts: list[Contact], channel: str = Channel.EMAIL) -> list[int]:
    rows = Delivery.objects.bulk_create(
        [
            Delivery(workspace_id=message.workspace_id, message=message, contact=c, channel=channel)
            for c in contacts
        ]
    )
    return [r.pk for r in rows]


@pytest.fixture
def sendgrid(sendgrid_fake: SendGridFake, settings: object) -> Iterator[SendGridFake]:
    settings.ANYMAIL = {  # type: ignore[attr-defined]
        **settings.ANYMAIL,  # type: ignore[attr-defined]
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
    }
    channel_sender.cache_clear()
    yield sendgrid_fake
    channel_sender.cache_clear()


def enqueue_now(ids: list[int]) -> list[tuple[str, list[int]]]:
    sent: list[tuple[str, list[int]]] = []
    with TestCase.captureOnCommitCallbacks(execute=True):
        deliveries_enqueue(ids=ids, send=lambda channel, chunk: sent.append((channel, chunk)))
    return sent


def test_one_delivery_per_message_contact_and_channel() -> None:
    message = make_message()
    contact = granted_contact()
    plan(message, [contact])
    with pytest.raises(IntegrityError), transaction.atomic():
        plan(message, [contact])


def test_illegal_moves_are_refused_by_the_statement_itself() -> None:
    message = make_message()
    [delivery_id] = plan(message, [granted_contact()])
    Delivery.objects.filter(pk=delivery_id).update(status=S.DELIVERED)
    assert deliveries_transition(ids=[delivery_id], target=S.SENDING) == []
    assert deliveries_transition(ids=[delivery_id], target=S.QUEUED) == []
    assert Delivery.objects.get(pk=delivery_id).status == S.DELIVERED
    assert deliveries_transition(ids=[delivery_id], target=S.CLICKED) == [delivery_id]
    with pytest.raises(IllegalTransition):
        deliveries_transition(ids=[delivery_id], target=S.PLANNED)


def test_enqueue_sends_one_task_per_chunk_and_channel(settings: object) -> None:
    settings.DELIVERY_CHUNK_SIZE = 2  # type: ignore[attr-defined]
    message = make_message()
    ids = plan(message, [granted_contact() for _ in range(5)])
    tasks = enqueue_now(ids)
    assert [len(chunk) for _, chunk in tasks] == [2, 2, 1]
    assert {channel for channel, _ in tasks} == {"email"}
    assert set(Delivery.objects.values_list("status", flat=True)) == {S.QUEUED}


def test_a_chunk_is_claimed_once_so_a_repeated_task_finds_nothing() -> None:
    message = make_message()
    ids = plan(message, [granted_contact() for _ in range(3)])
    enqueue_now(ids)
    first = deliveries_claim(ids=ids, channel="email", purpose=message.purpose)
    again = deliveries_claim(ids=ids, channel="email", purpose=message.purpose)
    assert sorted(first) == sorted(ids)
    assert again == []
    assert set(Delivery.objects.values_list("attempt", flat=True)) == {1}


def test_consent_revoked_after_planning_is_honoured_at_claim_time() -> None:
    message = make_message()
    keep, revoked, suppressed = (granted_contact() for _ in range(3))
    ids = plan(message, [keep, revoked, suppressed])
    enqueue_now(ids)
    consent_revoke(contact=revoked, channel="email", purpose="marketing", evidence=evidence())
    suppression_add(
        contact=suppressed,
        channel="email",
        reason=SuppressionReason.HARD_BOUNCE,
        source=ConsentSource.BOUNCE,
    )
    claimed = deliveries_claim(ids=ids, channel="email", purpose=message.purpose)
    assert claimed == [Delivery.objects.get(contact=keep).pk]
    statuses = dict(Delivery.objects.values_list("contact_id", "status"))
    assert statuses[revoked.pk] == S.SUPPRESSED
    assert statuses[suppressed.pk] == S.SUPPRESSED


def test_a_row_not_yet_due_is_not_claimed() -> None:
    message = make_message()
    ids = plan(message, [granted_contact()])
    enqueue_now(ids)
    Delivery.objects.update(not_before=timezone.now() + timedelta(hours=1))
    assert deliveries_claim(ids=ids, channel="email", purpose=message.purpose) == []


def test_a_chunk_reaches_sendgrid_once_per_consented_contact(sendgrid: SendGridFake) -> None:
    message = make_message()
    contacts = [granted_contact() for _ in range(4)]
    revoked = contacts[-1]
    ids = plan(message, contacts)
    enqueue_now(ids)
    consent_revoke(contact=revoked, channel="email", purpose="marketing", evidence=evidence())
    report = deliveries_send_chunk(channel="email", ids=ids)
    again = deliveries_send_chunk(channel="email", ids=ids)
    assert (report.claimed, report.sent) == (3, 3)
    assert again.claimed == 0
    received = sorted(p.to[0] for p in sendgrid.personalizations)
    assert received == sorted(str(c.email) for c in contacts[:3])
    assert len(sendgrid.requests_to("/v3/mail/send")) == 1
    sent = Delivery.objects.filter(status=S.SENT)
    assert sent.count() == 3
    assert all(d.provider_message_id for d in sent)
    timeline = list(DeliveryEvent.objects.filter(delivery=sent[0]).values_list("status", flat=True))
    assert timeline == [S.QUEUED, S.SENDING, S.SENT]


def test_sendgrid_down_retries_later_and_then_gives_up_with_the_reason(
    sendgrid: SendGridFake, settings: object
) -> None:
    settings.DELIVERY_MAX_ATTEMPTS = 2  # type: ignore[attr-defined]
    settings.DELIVERY_RETRY_BASE_S = 0  # type: ignore[attr-defined]
    message = make_message()
    ids = plan(message, [granted_contact()])
    enqueue_now(ids)
    sendgrid.set_fault(mode="error", status=503)
    first = deliveries_send_chunk(channel="email", ids=ids)
    assert first.deferred == 1
    assert first.retry_ids == ids
    assert Delivery.objects.get().status == S.QUEUED
    second = deliveries_send_chunk(channel="email", ids=ids)
    assert second.deferred == 1
    row = Delivery.objects.get()
    assert row.status == S.FAILED
    assert row.attempt == 2
    assert "gave up after 2 attempts" in row.events.order_by("-id")[0].detail


def test_a_contact_without_an_address_fails_with_a_reason(sendgrid: SendGridFake) -> None:
    message = make_message()
    contact = granted_contact()
    Contact.objects.filter(pk=contact.pk).update(email=None)
    ids = plan(message, [contact])
    enqueue_now(ids)
    report = deliveries_send_chunk(channel="email", ids=ids)
    assert report.failed == 1
    assert Delivery.objects.get().error_code == "unreachable"
    assert sendgrid.personalizations == []


@override_settings(DELIVERY_SENDING_STALE_S=60, DELIVERY_QUEUED_STALE_S=60)
def test_the_sweeper_requeues_lost_tasks_and_marks_lost_sends_unknown() -> None:
    message = make_message()
    queued, sending, fresh = plan(message, [granted_contact() for _ in range(3)])
    long_ago = timezone.now() - timedelta(minutes=10)
    Delivery.objects.filter(pk=queued).update(status=S.QUEUED, updated_at=long_ago)
    Delivery.objects.filter(pk=sending).update(status=S.SENDING, sending_at=long_ago)
    Delivery.objects.filter(pk=fresh).update(status=S.QUEUED, updated_at=timezone.now())
    requeued: list[tuple[str, list[int]]] = []
    result = deliveries_sweep(send=lambda channel, ids: requeued.append((channel, ids)))
    assert result == {"unknown": 1, "requeued": 1, "stranded": 0}
    assert requeued == [("email", [queued])]
    assert Delivery.objects.get(pk=sending).status == S.UNKNOWN


def test_retry_failed_never_touches_sent_or_unknown_rows() -> None:
    message = make_message()
    failed, sent, unknown = plan(message, [granted_contact() for _ in range(3)])
    Delivery.objects.filter(pk=failed).update(status=S.FAILED)
    Delivery.objects.filter(pk=sent).update(status=S.SENT)
    Delivery.objects.filter(pk=unknown).update(status=S.UNKNOWN)
    tasks: list[tuple[str, list[int]]] = []
    with TestCase.captureOnCommitCallbacks(execute=True):
        count = deliveries_retry_failed(
            ids=[failed, sent, unknown], send=lambda c, ids: tasks.append((c, ids))
        )
    assert count == 1
    assert tasks == [("email", [failed])]
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {failed: S.QUEUED, sent: S.SENT, unknown: S.UNKNOWN}


def test_the_admin_lists_deliveries_and_retries_only_failed_ones(admin_client: Client) -> None:
    message = make_message()
    failed, sent = plan(message, [granted_contact() for _ in range(2)])
    Delivery.objects.filter(pk=failed).update(status=S.FAILED, error_code="503")
    Delivery.objects.filter(pk=sent).update(status=S.SENT)
    listing = admin_client.get("/admin/delivery/delivery/?status__exact=failed")
    assert listing.status_code == 200
    assert b"503" in listing.content
    response = admin_client.post(
        "/admin/delivery/delivery/",
        {"action": "retry_failed", "_selected_action": [failed, sent]},
        follow=True,
    )
    assert b"1 failed deliveries queued again; 1 left alone" in response.content
    assert Delivery.objects.get(pk=sent).status == S.SENT
    page = admin_client.get(f"/admin/delivery/message/{message.pk}/change/")
    assert b"email: Queued 1" in page.content
    assert b"email: Sent 1" in page.content


def test_a_failed_system_mail_is_not_retried_and_the_admin_says_how_to_send_a_fresh_one(
    admin_client: Client,
) -> None:
    contact = granted_contact()
    mail = Delivery.objects.create(
        workspace_id=contact.workspace_id,
        message=None,
        contact=contact,
        channel="email",
        kind=DeliveryKind.DOUBLE_OPT_IN,
        address=contact.email or "",
        purpose="marketing",
        status=S.FAILED,
    )
    assert deliveries_retry_failed(ids=[mail.pk], send=lambda c, ids: None) == 0
    response = admin_client.post(
        "/admin/delivery/delivery/",
        {"action": "retry_failed", "_selected_action": [mail.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "0 failed deliveries queued again; 0 left alone" in text
    assert "1 failed system mails (double opt-in, preference links) are not sent again" in text
    assert Delivery.objects.get(pk=mail.pk).status == S.FAILED


@pytest.fixture
def push_sender(settings: object) -> Iterator[None]:
    from py_vapid import Vapid02

    vapid = Vapid02()
    vapid.generate_keys()
    settings.VAPID_PRIVATE_KEY = vapid.private_pem().decode()  # type: ignore[attr-defined]
    channel_sender.cache_clear()
    yield
    channel_sender.cache_clear()


def _push_contacts(fake: PushServiceFake, n: int) -> list[tuple[Contact, PushSubscription]]:
    pairs = []
    for _ in range(n):
        contact = granted_contact(channel=Channel.PUSH)
        info = fake.subscription_create()
        subscription = PushSubscription.objects.create(
            workspace_id=contact.workspace_id,
            contact=contact,
            endpoint=info["endpoint"],
            p256dh=info["keys"]["p256dh"],
            auth=info["keys"]["auth"],
        )
        pairs.append((contact, subscription))
    return pairs


def test_push_answers_reach_the_subscription_gone_ones_off_bad_keys_counted(
    push_fake: PushServiceFake, push_sender: None
) -> None:
    (gone_c, gone), (ok_c, ok), (bad_c, bad) = _push_contacts(push_fake, 3)
    push_fake.subscription_expire(gone.endpoint)
    PushSubscription.objects.filter(pk=bad.pk).update(p256dh="bm90IGEga2V5")
    message = make_message(push_title="Hi", push_body="Instagram is down")
    ids = plan(message, [gone_c, ok_c, bad_c], channel=Channel.PUSH)
    enqueue_now(ids)

    report = deliveries_send_chunk(channel=Channel.PUSH, ids=ids)

    assert (report.sent, report.suppressed, report.failed) == (1, 1, 1)
    gone.refresh_from_db()
    ok.refresh_from_db()
    bad.refresh_from_db()
    assert not gone.active and gone.last_failure.startswith("push_410")
    assert ok.active and ok.failure_count == 0
    assert bad.active and bad.failure_count == 1 and bad.last_failure.startswith("push_invalid")


def test_a_push_the_service_refuses_as_too_large_is_not_the_subscriptions_fault(
    push_fake: PushServiceFake, push_sender: None
) -> None:
    [(contact, subscription)] = _push_contacts(push_fake, 1)
    push_fake.set_fault(mode="error", status=413)
    ids = plan(make_message(push_title="Hi", push_body="x"), [contact], channel=Channel.PUSH)
    enqueue_now(ids)

    report = deliveries_send_chunk(channel=Channel.PUSH, ids=ids)

    assert report.failed == 1
    subscription.refresh_from_db()
    assert subscription.active and subscription.failure_count == 0
