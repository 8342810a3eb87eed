"""SMS keywords in the workspace's customers' language (#17): a workspace's own words beside
Twilio's, for its contacts only, answered in the contact's language."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from twilio.request_validator import RequestValidator

from contacts.models import Channel, Consent, ConsentEvent, ConsentSource, Contact
from continuity.models import Workspace
from continuity.sms_keywords import KeywordListInvalid, keyword_clashes, keywords_parse
from delivery.models import ProviderReceipt, ReceiptVerdict
from tests.contacts.factories import granted_contact
from tests.workspaces import make_member, make_workspace, workspace_for_tests

pytestmark = [pytest.mark.django_db]

PUBLIC = "https://continuity.example.com"
TOKEN = "test-twilio-token"
SID = "AC" + "2" * 32
INBOUND_URL = "/webhooks/twilio/inbound/"


@pytest.fixture(autouse=True)
def twilio_settings(settings: Any) -> None:
    settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_ACCOUNT_SID = SID


@pytest.fixture
def italian() -> Workspace:
    """The tests' workspace as an Italian business that configured its own keywords."""
    workspace = workspace_for_tests()
    workspace.language = "it"
    workspace.sms_stop_keywords = "ANNULLA, CANCELLA"
    workspace.sms_start_keywords = "ISCRIVIMI"
    workspace.sms_help_keywords = "AIUTO"
    workspace.save()
    return workspace


def inbound(phone: str, body: str, **extra: str) -> Any:
    params = {"AccountSid": SID, "MessageSid": "SM" + uuid.uuid4().hex, "From": phone}
    params = {**params, "Body": body, **extra}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + INBOUND_URL, params)
    return Client().post(
        INBOUND_URL,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def sms_state(contact: Contact) -> dict[str, str]:
    return dict(
        Consent.objects.filter(contact=contact, channel="sms").values_list("purpose", "state")
    )


def test_a_configured_italian_stop_word_revokes_and_is_confirmed_in_italian(
    italian: Workspace,
) -> None:
    maria = granted_contact(channel=Channel.SMS, phone="+393471234501", locale="it-IT")
    response = inbound("+393471234501", "Annulla!")
    assert response.status_code == 200
    assert sms_state(maria) == {"marketing": "revoked", "service": "revoked"}
    event = ConsentEvent.objects.filter(contact=maria, action="revoke").latest("id")
    assert (event.source, event.note) == (ConsentSource.SMS_KEYWORD, "inbound SMS keyword ANNULLA")
    body = response.content.decode()
    assert "<Message>" in body and "non riceverà più SMS" in body and "ISCRIVIMI" in body
    assert ProviderReceipt.objects.latest("id").verdict == ReceiptVerdict.APPLIED

    again = inbound("+393471234501", "iscrivimi")
    assert sms_state(maria) == {"marketing": "granted", "service": "granted"}
    assert "di nuovo" in again.content.decode() and "ANNULLA" in again.content.decode()


def test_an_english_contact_of_the_italian_business_is_answered_in_english(
    italian: Workspace,
) -> None:
    john = granted_contact(channel=Channel.SMS, phone="+447700900501", locale="en-GB")
    response = inbound("+447700900501", "CANCELLA")
    assert sms_state(john)["marketing"] == "revoked"
    body = response.content.decode()
    # In English, the word every number honours is the one to name.
    assert "you will receive no more text messages" in body and "Reply START" in body
    help_answer = inbound("+447700900501", "aiuto").content.decode()
    assert "Reply STOP to unsubscribe" in help_answer


def test_help_in_italian_names_the_workspaces_own_words(italian: Workspace) -> None:
    granted_contact(channel=Channel.SMS, phone="+393471234502", locale="it")
    body = inbound("+393471234502", "AIUTO").content.decode()
    assert "Risponda ANNULLA" in body and "ISCRIVIMI" in body


def test_twilios_own_words_still_apply_and_twilio_answers_them(italian: Workspace) -> None:
    maria = granted_contact(channel=Channel.SMS, phone="+393471234503", locale="it")
    response = inbound("+393471234503", "STOP")
    assert sms_state(maria)["marketing"] == "revoked"
    # Twilio answers its own STOP and would not deliver ours to a handset that just opted out.
    assert "<Message>" not in response.content.decode()


def test_advanced_opt_out_answers_for_itself(italian: Workspace) -> None:
    maria = granted_contact(channel=Channel.SMS, phone="+393471234504", locale="it")
    stop = inbound("+393471234504", "DISISCRIVIMI", OptOutType="STOP")
    assert sms_state(maria)["marketing"] == "revoked"
    help_answer = inbound("+393471234504", "AIUTO", OptOutType="HELP")
    assert "<Message>" not in stop.content.decode() + help_answer.content.decode()


def test_a_word_another_workspace_configured_is_nobody_elses_keyword(italian: Workspace) -> None:
    # The install's account texts for every workspace without its own: the Italian one's word
    # changes only its contacts, and is a customer talking for the other's.
    other = make_workspace(slug="bakery", name="Bakery")
    theirs = granted_contact(
        channel=Channel.SMS, phone="+393471234505", locale="it", workspace=other
    )
    ours = granted_contact(channel=Channel.SMS, phone="+393471234505", locale="it")
    inbound("+393471234505", "ANNULLA")
    assert sms_state(ours)["marketing"] == "revoked"
    assert sms_state(theirs) == {"marketing": "granted"}


def test_a_word_nobody_configured_is_a_customer_talking(italian: Workspace) -> None:
    maria = granted_contact(channel=Channel.SMS, phone="+393471234506", locale="it")
    for body in ("BASTA", "annulla il mio ordine"):
        response = inbound("+393471234506", body)
        assert "<Message>" not in response.content.decode()
        assert ProviderReceipt.objects.latest("id").verdict == ReceiptVerdict.IGNORED
    assert sms_state(maria) == {"marketing": "granted"}


def test_without_configured_words_only_twilios_apply() -> None:
    maria = granted_contact(channel=Channel.SMS, phone="+393471234507", locale="it")
    inbound("+393471234507", "ANNULLA")
    assert sms_state(maria) == {"marketing": "granted"}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("annulla, Cancella", ["ANNULLA", "CANCELLA"]),
        (" ANNULLA ,, annulla ", ["ANNULLA"]),
        ("DISISCRIVIMI, BASTA.", ["DISISCRIVIMI", "BASTA"]),
        ("", []),
    ],
)
def test_a_keyword_list_is_read_as_upper_case_words(raw: str, words: list[str]) -> None:
    assert keywords_parse(raw) == words


@pytest.mark.parametrize("raw", ["annulla tutto", "STOP-ALL", "12345", "per_favore"])
def test_a_list_item_that_is_not_one_word_is_refused_by_name(raw: str) -> None:
    with pytest.raises(KeywordListInvalid) as caught:
        keywords_parse(raw)
    assert raw in str(caught.value)


def test_a_word_that_would_mean_two_things_clashes() -> None:
    assert keyword_clashes({"stop": ["ANNULLA"], "start": ["ANNULLA", "STOP"]}) == [
        "ANNULLA",
        "STOP",
    ]
    assert keyword_clashes({"stop": ["ANNULLA", "STOP"], "help": ["AIUTO"]}) == []


def test_the_workspace_admin_edits_the_keywords_and_refuses_clashes(
    client: Client,
) -> None:
    workspace = workspace_for_tests()
    owner = make_member(workspace=workspace, role="owner")
    client.force_login(owner)
    url = f"/admin/continuity/workspace/{workspace.pk}/change/"
    form = client.get(url, HTTP_ACCEPT_LANGUAGE="it").content.decode()
    assert 'name="sms_stop_keywords"' in form
    assert '<option value="it">Italiano</option>' in form
    assert '<option value="Europe/Rome">Europe/Rome</option>' in form
    data = {
        "slug": workspace.slug,
        "name": workspace.name,
        "language": "it",
        "timezone": "Europe/Rome",
        "sms_stop_keywords": "annulla, cancella",
        "sms_start_keywords": "iscrivimi, STOP",
        "sms_help_keywords": "aiuto",
    }
    refused = client.post(url, data, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 200
    assert "would mean two things: STOP" in refused.content.decode()
    done = client.post(url, {**data, "sms_start_keywords": "iscrivimi"})
    assert done.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.sms_stop_keywords, workspace.language, workspace.timezone) == (
        "ANNULLA, CANCELLA",
        "it",
        "Europe/Rome",
    )
