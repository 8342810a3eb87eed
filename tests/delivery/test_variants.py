"""Content variants per language: the rule (contact's language, else the workspace's default,
else the base), the same rule in planning SQL, per-language counts and SMS costs, and senders
that send each contact their language's content, one email request per language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import TestCase, override_settings

from contacts.models import Channel, Contact
from continuity.models import Workspace
from delivery.dispatch import deliveries_enqueue, deliveries_send_chunk
from delivery.materialize import PlanSpec, deliveries_language_counts, deliveries_plan_slice
from delivery.models import Delivery, Message, MessageVariant
from delivery.senders import channel_content, channel_sender
from delivery.variants import PlanLanguages, message_languages
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_materialize import contact_with
from tests.workspaces import make_workspace, workspace_for_tests

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def message_with_variants(workspace: Workspace | None = None, **base: Any) -> Message:
    workspace = workspace or workspace_for_tests()
    message = Message.objects.create(
        workspace=workspace,
        name="multilingual",
        email_subject="BASE subject",
        email_text="BASE text",
        sms_text="BASE sms",
        push_title="BASE",
        push_body="BASE push",
        **base,
    )
    MessageVariant.objects.create(
        workspace=workspace,
        message=message,
        language="it",
        email_subject="Ciao {{ first_name }}",
        email_text="Saldi d'autunno: è già ora",
        sms_text="Saldi: è già ora",
        push_title="Saldi",
        push_body="Ciao {{ first_name }}",
    )
    MessageVariant.objects.create(
        workspace=workspace,
        message=message,
        language="en",
        email_subject="Hello {{ first_name }}",
        email_text="Autumn sale: it is time",
        sms_text="Sale: now",
        push_title="Sale",
        push_body="Hello {{ first_name }}",
    )
    return message


def set_language(workspace: Workspace, language: str) -> None:
    Workspace.objects.filter(pk=workspace.pk).update(language=language)
    workspace.language = language


def test_each_locale_gets_its_variant_else_the_workspace_default_per_channel() -> None:
    workspace = make_workspace(language="it-IT")
    message = message_with_variants(workspace)
    # The English variant has no SMS: English contacts get the default (Italian) SMS.
    MessageVariant.objects.filter(message=message, language="en").update(sms_text="")
    languages = message_languages(message=message)
    assert languages.default == "it"
    assert languages.language_for(locale="en_GB", channel=Channel.EMAIL) == "en"
    assert languages.language_for(locale="EN", channel=Channel.EMAIL) == "en"
    assert languages.language_for(locale="it-IT", channel=Channel.EMAIL) == "it"
    assert languages.language_for(locale="de-DE", channel=Channel.EMAIL) == "it"
    assert languages.language_for(locale="", channel=Channel.EMAIL) == "it"
    assert languages.language_for(locale="en", channel=Channel.SMS) == "it"
    assert languages.source(language="en", channel=Channel.SMS).sms_text == "Saldi: è già ora"


def test_without_a_default_language_variant_the_base_content_is_sent() -> None:
    workspace = make_workspace(language="fr")
    message = message_with_variants(workspace)
    languages = message_languages(message=message)
    assert languages.language_for(locale="de", channel=Channel.EMAIL) == "fr"
    source = languages.source(language="fr", channel=Channel.EMAIL)
    assert source.email_subject == "BASE subject"
    assert languages.source(language="en", channel=Channel.EMAIL).email_subject.startswith("Hello")


def test_whatsapp_uses_the_variants_template_language() -> None:
    workspace = make_workspace(language="en")
    message = message_with_variants(
        workspace, whatsapp_template="outage_notice", whatsapp_language="en_US"
    )
    MessageVariant.objects.filter(message=message, language="it").update(whatsapp_language="it")
    languages = message_languages(message=message)
    assert languages.language_for(locale="it", channel=Channel.WHATSAPP) == "it"
    italian = channel_content(
        message=message, channel=Channel.WHATSAPP, language="it", languages=languages
    )
    german = channel_content(
        message=message, channel=Channel.WHATSAPP, language="en", languages=languages
    )
    assert (italian.template, italian.language) == ("outage_notice", "it")  # type: ignore[union-attr]
    assert german.language == "en_US"  # type: ignore[union-attr]


LOCALES = ["it-IT", "it", "IT_it", "en-GB", "en", "de-DE", "", "xx-YY", "fr"]


@override_settings(REROUTE_QUIET_HOURS={})
def test_planning_counts_each_channel_per_language_exactly_as_the_python_rule() -> None:
    workspace = workspace_for_tests()
    set_language(workspace, "it")
    message = message_with_variants(workspace)
    MessageVariant.objects.filter(message=message, language="en").update(sms_text="")
    contacts = [
        contact_with(Channel.EMAIL, Channel.SMS, push=False, locale=locale)
        for locale in LOCALES
        for _ in range(2)
    ]
    languages = message_languages(message=message)
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=workspace.pk,
        purpose="marketing",
        channels=(Channel.EMAIL, Channel.SMS),
        mode="all",
        languages=PlanLanguages(
            default=languages.default, ready=languages.ready, sms_cost={"it": 1}
        ),
    )
    result = deliveries_plan_slice(
        spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=1000
    )
    expected: dict[str, dict[str, int]] = {}
    for contact in contacts:
        for channel in (Channel.EMAIL, Channel.SMS):
            lang = languages.language_for(locale=contact.locale, channel=channel)
            expected.setdefault(channel, {})
            expected[channel][lang] = expected[channel].get(lang, 0) + 1
    assert result.languages == expected
    assert result.languages[Channel.EMAIL] == {"it": 14, "en": 4}
    assert result.languages[Channel.SMS] == {"it": 18}
    counts = deliveries_language_counts(
        message_id=message.pk,
        workspace_id=workspace.pk,
        channels=[Channel.EMAIL, Channel.SMS],
        languages=languages,
    )
    assert counts[Channel.EMAIL] == {"it": {"planned": 14}, "en": {"planned": 4}}


@override_settings(REROUTE_QUIET_HOURS={})
def test_an_sms_costs_the_segments_of_its_own_language() -> None:
    workspace = workspace_for_tests()
    set_language(workspace, "en")
    message = message_with_variants(workspace)
    italian = contact_with(Channel.SMS, email=False, push=False, locale="it")
    english = contact_with(Channel.SMS, email=False, push=False, locale="en")
    spec = PlanSpec(
        message_id=message.pk,
        workspace_id=workspace.pk,
        purpose="marketing",
        channels=(Channel.SMS,),
        sms_cost_units=3,
        languages=PlanLanguages(
            default="en", ready={Channel.SMS: ("en", "it")}, sms_cost={"it": 3, "en": 1}
        ),
    )
    result = deliveries_plan_slice(
        spec=spec, audience=Contact.objects.all(), after_contact_id=0, limit=1000
    )
    cost = dict(Delivery.objects.values_list("contact_id", "cost_units"))
    assert cost == {italian.pk: 3, english.pk: 1}
    assert result.sms_segments == 4


@pytest.fixture
def sendgrid(sendgrid_fake: SendGridFake, settings: Any) -> Iterator[SendGridFake]:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
    }
    channel_sender.cache_clear()
    yield sendgrid_fake
    channel_sender.cache_clear()


def test_a_chunk_sends_one_email_request_per_language_each_contact_their_own(
    sendgrid: SendGridFake,
) -> None:
    workspace = workspace_for_tests()
    set_language(workspace, "it")
    message = message_with_variants(workspace)
    people = {
        "it": [granted_contact(locale="it-IT") for _ in range(3)],
        "en": [granted_contact(locale="en-GB") for _ in range(2)],
        "de": [granted_contact(locale="de") for _ in range(2)],
    }
    rows = Delivery.objects.bulk_create(
        [
            Delivery(workspace_id=workspace.pk, message=message, contact=c, channel="email")
            for group in people.values()
            for c in group
        ]
    )
    ids = [r.pk for r in rows]
    with TestCase.captureOnCommitCallbacks(execute=True):
        deliveries_enqueue(ids=ids, send=lambda channel, chunk: None)
    report = deliveries_send_chunk(channel="email", ids=ids)
    assert report.sent == 7
    # The subject travels as a template with per-recipient substitutions.
    greeting = {p.to[0]: p.subject.split()[0] for p in sendgrid.personalizations}
    for contact in [*people["it"], *people["de"]]:
        assert greeting[str(contact.email)] == "Ciao"
    for contact in people["en"]:
        assert greeting[str(contact.email)] == "Hello"
    # One request per content language (it for Italian and German, en), never one per contact.
    assert len(sendgrid.requests_to("/v3/mail/send")) == 2
