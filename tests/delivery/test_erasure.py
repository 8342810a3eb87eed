"""Erasure erases (#19): a contact who was mailed and texted, whose providers reported back
through the fakes' signed webhooks, is exported, then erased; the whole database is then
searched, every text and JSON column of every table, for their email address and phone number,
and holds nothing but hashes. Re-adding them is refused with the reason until staff record new
consent; a provider report arriving after the erasure keeps no payload."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client, TestCase

from contacts.consent import consent_confirm, consent_request_double_opt_in
from contacts.models import (
    Channel,
    Contact,
    ErasedIdentifier,
    ImportRefusedRow,
    ImportRun,
    ImportUpload,
    Purpose,
    PushSubscription,
    Segment,
)
from contacts.privacy import erased_identifier_lift
from contacts.upsert import contact_tags_add
from continuity.models import Role
from delivery import system_mail
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery, DeliveryKind, Message, ProviderReceipt
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.contacts.factories import evidence, granted_contact
from tests.delivery.conftest import SinkFake
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = [pytest.mark.django_db]

EMAIL = "zelmira.erasable@example.org"
PHONE = "+14155550187"
NAME = "Zelmira"


def _needles() -> list[str]:
    """Every written form of the identifiers a careless copy could keep."""
    return [EMAIL, quote(EMAIL, safe=""), PHONE, quote(PHONE, safe=""), PHONE.lstrip("+"), NAME]


def database_search(needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text, varchar or json value that contains a needle."""
    found: list[tuple[str, str, str]] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "JOIN information_schema.tables USING (table_schema, table_name) "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND data_type IN "
            "('text', 'character varying', 'character', 'json', 'jsonb', 'inet', 'ARRAY')"
        )
        columns = cursor.fetchall()
        assert len(columns) > 100, "the search must cover every table"
        patterns = [f"%{n.lower()}%" for n in needles]
        for table, column in columns:
            cursor.execute(
                f'SELECT "{column}"::text FROM "{table}" '  # noqa: S608 - catalogue names  # nosec B608
                f'WHERE lower("{column}"::text) LIKE ANY(%s) LIMIT 3',
                [patterns],
            )
            found += [(table, column, (value or "")[:200]) for (value,) in cursor.fetchall()]
    return found


@pytest.fixture
def providers(
    sendgrid_fake: SendGridFake,
    twilio_fake: TwilioFake,
    sink: SinkFake,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[SendGridFake, TwilioFake, SinkFake]]:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": sendgrid_fake.verification_key,
    }
    settings.DELIVERY_EMAIL_FAILOVER_BACKEND = ""
    settings.TWILIO_API_BASE_URL = twilio_fake.url
    settings.TWILIO_ACCOUNT_SID = twilio_fake.account_sid
    settings.TWILIO_AUTH_TOKEN = twilio_fake.auth_token
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    # Twilio signs the URL it calls: the sink stands at our public address, and its requests are
    # replayed into the app as they came.
    settings.DELIVERY_PUBLIC_BASE_URL = sink.url
    channel_sender.cache_clear()

    def send_now(*, delivery_id: int, countdown: float = 0.0) -> bool:
        system_mail.system_mail_send(delivery_id=delivery_id)
        return True

    monkeypatch.setattr(system_mail, "system_mail_enqueue", send_now)
    yield sendgrid_fake, twilio_fake, sink
    channel_sender.cache_clear()


def _sendgrid_post(fake: SendGridFake, body: bytes) -> int:
    headers = fake.events_sign(body)
    response = Client().post(
        "/webhooks/sendgrid/events/",
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )
    return response.status_code


def _replay_twilio_callbacks(sink: SinkFake, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(sink.requests_to(r"/webhooks/twilio/status/")) < count:
        assert time.monotonic() < deadline, "the Twilio fake's callbacks never came"
        time.sleep(0.05)
    for request in sink.requests_to(r"/webhooks/twilio/status/"):
        response = Client().post(
            request.path,
            data=request.body,
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=request.headers.get("X-Twilio-Signature", ""),
        )
        assert response.status_code == 200, response.content


def _inbound(twilio: TwilioFake, sink: SinkFake, params: dict[str, str]) -> int:
    from urllib.parse import urlencode

    path = "/webhooks/twilio/inbound/"
    signature = twilio.signature(sink.url + path, params)
    return (
        Client()
        .post(
            path,
            data=urlencode(params),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=signature,
        )
        .status_code
    )


@pytest.fixture
def api(client: Client) -> Client:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.OWNER, username="dpo")
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def _mailed_and_texted(providers: tuple[SendGridFake, TwilioFake, SinkFake]) -> Contact:
    """The person: a confirmed double opt-in, one campaign email and one SMS, each reported
    back by its provider through the signed webhooks, an inbound text, a push subscription."""
    sendgrid, twilio, sink = providers
    contact = granted_contact(
        channel=Channel.SMS, email=EMAIL, phone=PHONE, first_name=NAME, locale="it"
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        consent_request_double_opt_in(contact=contact, evidence=evidence())
    consent_confirm(contact=contact, purpose=Purpose.MARKETING, evidence=evidence())
    contact_tags_add(workspace=contact.workspace_id, pairs=[(contact.pk, ["vip"])])
    Segment.objects.create(workspace=workspace_for_tests(), name="VIPs", tags_any=["vip"])
    PushSubscription.objects.create(
        workspace_id=contact.workspace_id,
        contact=contact,
        endpoint="https://fcm.googleapis.com/fcm/send/erasable",
        p256dh="p" * 20,
        auth="a" * 10,
    )
    message = Message.objects.create(
        workspace=workspace_for_tests(),
        name="spring",
        email_subject="Hi {{ first_name }}",
        email_html="<p>Hi {{ first_name }}</p>",
        email_text="Hi {{ first_name }}",
        sms_text="Hi {{ first_name }}",
    )
    rows = {
        channel: Delivery.objects.create(
            workspace_id=contact.workspace_id,
            message=message,
            contact=contact,
            channel=channel,
            status=S.QUEUED,
        )
        for channel in (Channel.EMAIL, Channel.SMS)
    }
    assert deliveries_send_chunk(channel="email", ids=[rows[Channel.EMAIL].pk]).sent == 1
    assert deliveries_send_chunk(channel="sms", ids=[rows[Channel.SMS].pk]).sent == 1
    assert [p.to for p in sendgrid.personalizations] == [[EMAIL], [EMAIL]]  # opt-in + campaign
    # SendGrid's events (with the open's IP and user agent) and Twilio's callbacks come back.
    body = (
        b"["
        + b",".join(
            json.dumps(e).encode()
            for e in sendgrid.events_for("delivered")
            + sendgrid.events_for("open", ip="198.51.100.7", useragent="Mail/1.0")
        )
        + b"]"
    )
    assert _sendgrid_post(sendgrid, body) == 200
    _replay_twilio_callbacks(sink, 2)
    inbound = {"AccountSid": twilio.account_sid, "MessageSid": "SM" + "9" * 32}
    assert _inbound(twilio, sink, {**inbound, "From": PHONE, "Body": "who is this?"}) == 200
    return contact


def test_an_erased_contact_leaves_only_hashes_in_the_whole_database(
    providers: tuple[SendGridFake, TwilioFake, SinkFake],
    api: Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sendgrid, twilio, sink = providers
    # Every log record of the whole flow, at the production level, with its extra fields.
    caplog.set_level(logging.INFO)
    contact = _mailed_and_texted(providers)
    deliveries = Delivery.objects.filter(contact=contact)
    assert {(d.kind, d.channel, d.status) for d in deliveries} == {
        (DeliveryKind.DOUBLE_OPT_IN, "email", S.OPENED),
        (DeliveryKind.CAMPAIGN, "email", S.OPENED),
        (DeliveryKind.CAMPAIGN, "sms", S.DELIVERED),
    }
    # Import error reports that name them (as typed: their phone with spaces and brackets), one
    # that does not, and a file uploaded to the admin import and never confirmed.
    csv_file = tmp_path / "fix-me.csv"
    csv_file.write_text(
        "email,phone,timezone\n"
        f"{EMAIL},,Mars/Base\n"
        ",+1 (415) 555-0187,Mars/Base\n"
        "someone.else@example.org,,Mars/Base\n"
    )
    call_command(
        "import_contacts", str(csv_file), "--workspace", workspace_for_tests().slug,
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    report = ImportRun.objects.latest("pk")
    assert report.refused == 3
    ImportUpload.objects.create(
        name="f" * 32,
        workspace_id=contact.workspace_id,
        uploaded_by=User.objects.get(username="dpo"),
        content=f"email\n{EMAIL}\n".encode(),
    )
    assert database_search([EMAIL, PHONE]), "the test must start with the data in place"

    # The export before the erasure lists every delivery, with the provider's status history.
    export = api.get(f"/api/v1/contacts/{contact.pk}/export/")
    assert export.status_code == 200
    document = export.json()
    assert {d["id"] for d in document["deliveries"]} == {d.pk for d in deliveries}
    email = next(
        d for d in document["deliveries"] if d["kind"] == "campaign" and d["channel"] == "email"
    )
    assert [e["status"] for e in email["events"]][-2:] == ["delivered", "opened"]
    assert document["contact"]["email"] == EMAIL
    assert document["push_subscriptions"][0]["endpoint"].startswith("https://fcm.googleapis.com/")
    assert document["contact"]["tags"] == ["vip"]
    assert document["segments"] == [{"id": Segment.objects.get().pk, "name": "VIPs"}]
    assert {e["action"] for e in document["consent_events"]} >= {"grant", "request", "confirm"}
    assert all(
        e["ip"] == "203.0.113.9" for e in document["consent_events"] if e["source"] == "form"
    )

    assert api.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 204

    leftovers = database_search(_needles())
    assert leftovers == [], leftovers
    # Their two lines left the error report (its totals stand); the other person's stayed.
    report.refresh_from_db()
    assert (report.refused, report.erased_rows) == (3, 2)
    assert [r.values[0] for r in report.refused_rows.all()] == ["someone.else@example.org"]
    assert not ImportUpload.objects.exists()
    assert ErasedIdentifier.objects.filter(workspace_id=contact.workspace_id).count() == 2
    assert set(Delivery.objects.filter(contact=contact).values_list("status", flat=True)) == {
        S.DELIVERED,
        S.OPENED,
    }

    # Erasing again, or a contact that does not exist: a clear 4xx, nothing changes.
    again = api.delete(f"/api/v1/contacts/{contact.pk}/")
    assert again.status_code == 409 and again.json()["error"] == "contact_erased"
    assert api.delete("/api/v1/contacts/999999999/").status_code == 404

    # A provider report about them after the erasure is kept without its payload.
    late = json.dumps(sendgrid.events_for("click", url="https://x.example/")).encode()
    assert _sendgrid_post(sendgrid, late) == 200
    inbound = {"AccountSid": twilio.account_sid, "MessageSid": "SM" + "8" * 32}
    assert _inbound(twilio, sink, {**inbound, "From": PHONE, "Body": "STOP"}) == 200
    last_two = list(ProviderReceipt.objects.order_by("-id")[:2])
    assert all(r.body == "" and "erased contact" in r.reason for r in last_two)
    assert database_search(_needles()) == []

    # Re-adding them is refused with the reason: the API, one by one and in bulk, and imports.
    single = api.post("/api/v1/contacts/", {"email": EMAIL}, content_type="application/json")
    assert single.status_code == 400
    assert "asked to be erased" in single.json()["detail"]["email"]
    bulk = api.post(
        "/api/v1/contacts/bulk/",
        {"contacts": [{"phone": PHONE}, {"email": "someone.else@example.org"}]},
        content_type="application/json",
    ).json()
    assert bulk["results"][0]["status"] == "error"
    assert "asked to be erased" in bulk["results"][0]["errors"][0]["message"]
    assert bulk["results"][1]["status"] == "created"
    csv_file = tmp_path / "again.csv"
    csv_file.write_text(f"email,phone\n{EMAIL.upper()},\n")
    call_command(
        "import_contacts", str(csv_file), "--workspace", workspace_for_tests().slug,
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    refused = ImportRefusedRow.objects.get(run=ImportRun.objects.latest("pk"))
    assert "asked to be erased" in refused.message
    # The refusal is reported without their values: no new copy of them after the erasure.
    assert refused.values == ["[erased]", ""]
    assert database_search(_needles()) == []
    assert not Contact.objects.filter(email=EMAIL).exists()

    # New consent, recorded by staff with its evidence, lets them back in.
    # Nor did any log line name them, all along (logs leave the install: erasure cannot reach
    # them, so they never hold an identifier).
    logged = [repr(record.__dict__).lower() for record in caplog.records]
    assert len(logged) > 5, "the flow must have logged"
    assert [line[:300] for line in logged if any(n.lower() in line for n in _needles())] == []

    lifted = erased_identifier_lift(
        workspace_id=contact.workspace_id,
        identifier=EMAIL,
        evidence=evidence(note="signed paper form, 2026-12-07", recorded_by="dpo"),
    )
    assert lifted == 1
    back = api.post("/api/v1/contacts/", {"email": EMAIL}, content_type="application/json")
    assert back.status_code == 201
