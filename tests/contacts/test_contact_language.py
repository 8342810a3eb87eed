"""A contact's language (#17): a BCP 47 tag checked and normalised wherever it comes in, shown by
name, chosen in the preference centre; the public pages and system mails speak it whatever the
browser says."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.test.utils import override_settings

from contacts import links
from contacts.consent import consent_request_double_opt_in
from contacts.link_mail import preference_link_request
from contacts.models import Channel, ConsentAction, ConsentEvent, Contact, Purpose
from contacts.normalize import FieldError, locale_normalise
from contacts.upsert import contacts_upsert_rows
from continuity.models import Role, Workspace
from tests.contacts.factories import evidence, granted_contact, make_contact
from tests.harness import redis_keys_delete
from tests.workspaces import (
    bearer,
    make_api_key,
    make_member,
    make_workspace,
    workspace_for_tests,
)

pytestmark = pytest.mark.django_db

ENGLISH_BROWSER = {"Accept-Language": "en-GB,en;q=0.9"}
ITALIAN_BROWSER = {"Accept-Language": "it-IT,it;q=0.9"}


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # The link-mail throttle lives in the cache: only this run's keys, never FLUSHDB.
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])


def _path(url: str) -> str:
    return url.split("8000", 1)[1] if "8000" in url else url


# --- the tag ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("it_IT", "it-IT"),
        ("it-it", "it-IT"),
        ("EN-gb", "en-GB"),
        ("it_IT.UTF-8", "it-IT"),
        ("de_DE@euro", "de-DE"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("fil", "fil"),
        (" it ", "it"),
        ("", ""),
    ],
)
def test_a_language_tag_is_stored_in_its_conventional_spelling(raw: str, stored: str) -> None:
    assert locale_normalise(raw) == stored


@pytest.mark.parametrize("raw", ["english", "xx", "12", "it--IT", "it IT", "Italiano", "i"])
def test_what_is_not_a_language_tag_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        locale_normalise(raw)
    assert caught.value.field == "locale"
    assert "is not a language tag" in caught.value.message


def test_imported_rows_store_the_normalised_tag_and_a_bad_tag_is_that_rows_error() -> None:
    report = contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "maria@example.com", "locale": "it_IT"},
            {"email": "bad@example.com", "locale": "Italian"},
            {"email": "john@example.com", "locale": "en"},
        ],
        blank_means_unchanged=False,
    )
    assert [r.status for r in report.results] == ["created", "error", "created"]
    assert [(e.row, e.field) for e in report.errors] == [(2, "locale")]
    assert dict(Contact.objects.values_list("email", "locale")) == {
        "maria@example.com": "it-IT",
        "john@example.com": "en",
    }


def test_the_api_reports_a_bad_language_by_row_and_field() -> None:
    workspace = workspace_for_tests()
    client = Client()
    user = make_member(workspace=workspace, role=Role.OWNER, username="lang-integrator")
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    rows = [
        {"email": "a@example.com", "locale": "it_IT"},
        {"email": "b@example.com", "locale": "??"},
    ]
    response = client.post(
        "/api/v1/contacts/bulk/", {"contacts": rows}, content_type="application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["results"][1]["errors"][0]["field"] == "locale"
    assert Contact.objects.get(email="a@example.com").locale == "it-IT"
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert "BCP 47" in schema.content.decode()


def test_the_admin_import_normalises_the_language_and_reports_a_bad_one(
    admin_client: Client,
) -> None:
    upload = io.BytesIO(
        b"email,locale\nann@example.com,it_IT\nbob@example.com,klingon\ncy@example.com,\n"
    )
    upload.name = "people.csv"
    preview = admin_client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
        headers=ENGLISH_BROWSER,
    )
    html = preview.content.decode()
    assert "is not a language tag" in html
    fields = dict(
        re.findall(
            r'name="(import_file_name|original_file_name|format|resource)"[^>]*value="([^"]*)"',
            html,
        )
    )
    done = admin_client.post("/admin/contacts/contact/process_import/", fields)
    assert done.status_code == 302
    assert dict(Contact.objects.values_list("email", "locale")) == {
        "ann@example.com": "it-IT",
        "cy@example.com": "",
    }


# --- the admin ----------------------------------------------------------------------------------


def test_the_admin_shows_the_language_by_name_and_offers_languages_to_choose(
    admin_client: Client,
) -> None:
    contact = make_contact(email="maria@example.com", locale="it-CH")
    listing = admin_client.get("/admin/contacts/contact/", headers=ENGLISH_BROWSER).content.decode()
    assert "Italian (it-CH)" in listing
    form = admin_client.get(
        f"/admin/contacts/contact/{contact.pk}/change/", headers=ITALIAN_BROWSER
    ).content.decode()
    assert re.search(r'<label for="id_locale"[^>]*>Lingua', form)
    assert '<select name="locale"' in form
    # The stored regional tag stays a choice of its own, chosen; plain languages by name.
    assert re.search(r'<option value="it-CH" selected>Italiano \(it-CH\)</option>', form)
    assert '<option value="de">Tedesco</option>' in form


def test_the_admin_form_keeps_a_chosen_language_and_refuses_a_forged_one(
    admin_client: Client,
) -> None:
    contact = make_contact(email="john@example.com", locale="")
    url = f"/admin/contacts/contact/{contact.pk}/change/"
    data: dict[str, Any] = {
        "external_id": contact.external_id,
        "email": contact.email,
        "phone": "",
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "timezone": contact.timezone,
        "attributes": "{}",
    }
    for prefix in ("consents", "suppressions", "push_subscriptions", "consent_events"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    forged = admin_client.post(url, {**data, "locale": "english"})
    assert forged.status_code == 200  # the form again, with the error
    contact.refresh_from_db()
    assert contact.locale == ""
    saved = admin_client.post(url, {**data, "locale": "it"})
    assert saved.status_code == 302, saved.content.decode()[:3000]
    contact.refresh_from_db()
    assert contact.locale == "it"


# --- the public pages ---------------------------------------------------------------------------


def test_the_preference_centre_speaks_the_contacts_language_not_the_browsers(
    client: Client,
) -> None:
    maria = granted_contact(email="maria@example.com", locale="it-IT")
    john = granted_contact(email="john@example.com", locale="en")
    italian = client.get(_path(links.preference_url(contact_id=maria.pk)), headers=ENGLISH_BROWSER)
    english = client.get(_path(links.preference_url(contact_id=john.pk)), headers=ITALIAN_BROWSER)
    assert "Le Sue preferenze" in italian.content.decode()
    assert italian["Content-Language"] == "it"
    assert '<html lang="it">' in italian.content.decode()
    assert "Your preferences" in english.content.decode()
    assert english["Content-Language"] == "en"


def test_the_switch_shows_the_page_in_another_language_without_changing_the_contacts(
    client: Client,
) -> None:
    maria = granted_contact(email="maria@example.com", locale="it")
    url = _path(links.preference_url(contact_id=maria.pk))
    page = client.get(url).content.decode()
    assert '<a href="?lang=en" lang="en" hreflang="en">English</a>' in page
    switched = client.get(url + "?lang=en", headers=ITALIAN_BROWSER).content.decode()
    assert "Your preferences" in switched
    unknown = client.get(url + "?lang=xx", headers=ENGLISH_BROWSER).content.decode()
    assert '<html lang="it">' in unknown  # an unknown choice is ignored, not an error
    maria.refresh_from_db()
    assert maria.locale == "it"


def test_a_contact_without_a_language_gets_the_workspaces(client: Client) -> None:
    workspace = make_workspace(language="it")
    contact = granted_contact(email="anon@example.com", locale="", workspace=workspace)
    page = client.get(_path(links.preference_url(contact_id=contact.pk)), headers=ENGLISH_BROWSER)
    assert "Le Sue preferenze" in page.content.decode()


def test_where_no_language_is_known_the_browser_decides(client: Client) -> None:
    contact = granted_contact(email="anon@example.com", locale="")  # the workspace has none
    url = _path(links.preference_url(contact_id=contact.pk))
    assert client.get(url, headers=ITALIAN_BROWSER)["Content-Language"] == "it"
    assert client.get(url, headers=ENGLISH_BROWSER)["Content-Language"] == "en"


def test_the_preference_centre_sets_the_contacts_language_and_answers_in_it(
    client: Client,
) -> None:
    john = granted_contact(email="john@example.com", locale="en")
    url = _path(links.preference_url(contact_id=john.pk))
    page = client.get(url).content.decode()
    assert '<option value="en" lang="en" selected>English</option>' in page
    assert '<option value="it" lang="it">italiano</option>' in page
    response = client.post(
        url,
        {"channel_email": "on", "email": john.email, "phone": "", "language": "it"},
        headers=ENGLISH_BROWSER,
    )
    assert response.status_code == 200
    assert "Le Sue preferenze" in response.content.decode()
    john.refresh_from_db()
    assert john.locale == "it"
    event = ConsentEvent.objects.filter(contact=john, action=ConsentAction.DETAILS).get()
    assert event.note == "language changed to it"


def test_the_preference_centre_keeps_a_regional_tag_and_a_language_it_does_not_speak(
    client: Client,
) -> None:
    swiss = granted_contact(email="ch@example.com", locale="it-CH")
    german = granted_contact(email="de@example.com", locale="de-DE")
    for contact, posted in ((swiss, "it"), (german, "de-DE")):
        url = _path(links.preference_url(contact_id=contact.pk))
        page = client.get(url).content.decode()
        assert f'value="{posted}"' in page
        client.post(url, {"channel_email": "on", "email": contact.email, "language": posted})
    swiss.refresh_from_db()
    german.refresh_from_db()
    assert (swiss.locale, german.locale) == ("it-CH", "de-DE")
    assert not ConsentEvent.objects.filter(action=ConsentAction.DETAILS).exists()


def test_the_unsubscribe_and_confirmation_pages_speak_the_contacts_language(
    client: Client,
) -> None:
    maria = granted_contact(email="maria@example.com", locale="it")
    unsubscribe = _path(links.unsubscribe_url(contact_id=maria.pk, channel=Channel.EMAIL))
    asking = client.get(unsubscribe, headers=ENGLISH_BROWSER).content.decode()
    assert "Annullare l" in asking and "iscrizione via Email?" in asking
    done = client.post(unsubscribe, {"confirm": "yes"}, headers=ENGLISH_BROWSER).content.decode()
    assert "iscrizione è stata annullata" in done
    pending = make_contact(email="new@example.com", locale="en")
    consent_request_double_opt_in(contact=pending, evidence=evidence())
    confirm = _path(links.double_opt_in_url(contact_id=pending.pk, purpose=Purpose.MARKETING))
    page = client.get(confirm, headers=ITALIAN_BROWSER).content.decode()
    assert "Confirm your subscription" in page
    assert "Thank you" in client.post(confirm, headers=ITALIAN_BROWSER).content.decode()


def test_a_broken_link_answers_in_the_browsers_language(client: Client) -> None:
    page = client.get("/preferences/not-a-token/", headers=ITALIAN_BROWSER)
    assert page.status_code == 400
    assert page["Content-Language"] == "it"


# --- system mails -------------------------------------------------------------------------------


def test_the_preference_link_mail_is_in_the_contacts_language(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    maria = granted_contact(email="maria@example.com", locale="it-IT")
    john = granted_contact(email="john@example.com", locale="en-GB")
    for contact, browser in ((maria, ENGLISH_BROWSER), (john, ITALIAN_BROWSER)):
        url = _path(links.unsubscribe_url(contact_id=contact.pk, channel=Channel.EMAIL))
        with django_capture_on_commit_callbacks(execute=True):
            client.post(url.rstrip("/") + "/preferences/", headers=browser)
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects == {
        "maria@example.com": "Il Suo link per gestire le iscrizioni",
        "john@example.com": "Your link to manage your subscriptions",
    }


def test_the_double_opt_in_mail_is_in_the_contacts_language_whoever_asks(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.utils import translation

    italian_workspace = make_workspace(language="it")
    maria = make_contact(email="maria@example.com", locale="")  # the workspace's language
    maria.workspace = italian_workspace
    maria.save()
    john = make_contact(email="john@example.com", locale="en", workspace=italian_workspace)
    with translation.override("it"), django_capture_on_commit_callbacks(execute=True):
        consent_request_double_opt_in(contact=maria, evidence=evidence())
        consent_request_double_opt_in(contact=john, evidence=evidence())
    by_address = {m.to[0]: m for m in mail.outbox}
    assert by_address["maria@example.com"].subject == "Confermi la Sua iscrizione"
    assert "apra questo link" in by_address["maria@example.com"].body
    assert by_address["john@example.com"].subject == "Please confirm your subscription"
    assert "by opening this link" in by_address["john@example.com"].body


@override_settings(CONTACTS_DOUBLE_OPT_IN_SUBJECT="Benvenuto da Pasticceria Rossi")
def test_a_double_opt_in_subject_the_business_set_is_sent_as_written(
    django_capture_on_commit_callbacks: Any,
) -> None:
    john = make_contact(email="john@example.com", locale="en")
    with django_capture_on_commit_callbacks(execute=True):
        consent_request_double_opt_in(contact=john, evidence=evidence())
    assert mail.outbox[0].subject == "Benvenuto da Pasticceria Rossi"


def test_a_workspace_language_reaches_the_mail_of_a_contact_without_one(
    django_capture_on_commit_callbacks: Any,
) -> None:
    workspace = Workspace.objects.create(slug="rossi", name="Rossi", language="it")
    contact = make_contact(email="x@example.com", locale="", workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        preference_link_request(contact=contact)
    assert mail.outbox[0].subject == "Il Suo link per gestire le iscrizioni"
