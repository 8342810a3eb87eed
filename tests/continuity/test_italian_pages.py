"""With the browser in Italian (Accept-Language: it) the admin and the public pages answer in
Italian, and the visitor's own choice (the language cookie set by Django's set_language view) wins
over the browser (#17)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from contacts import links
from contacts.models import Channel
from tests.contacts.factories import granted_contact
from tests.contacts.test_views import _path
from tests.harness import redis_keys_delete
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db
ITALIAN = "it-IT,it;q=0.9,en;q=0.5"


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # Throttle keys name contact ids, which a new test database hands out again.
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])
    workspace_for_tests()


def _page(client: Client, path: str, language: str | None = None) -> str:
    headers = {"Accept-Language": language} if language else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_the_admin_index_follows_an_italian_browser(admin_client: Client) -> None:
    page = _page(admin_client, "/admin/", ITALIAN)
    assert 'lang="it"' in page
    for italian in ("Amministrazione sito Django", "Area di lavoro", "Lingua", "Campagne"):
        assert italian in page, italian
    assert "Site administration" not in page
    assert ">Workspace<" not in page and ">Language<" not in page
    english = _page(admin_client, "/admin/")  # no Accept-Language: the install's English
    assert 'lang="en"' in english and ">Workspace<" in english


def test_a_changelist_is_italian_down_to_its_columns_and_actions(admin_client: Client) -> None:
    page = _page(admin_client, "/admin/continuity/auditevent/", ITALIAN)
    for italian in ("Seleziona evento di audit", "Esporta in CSV", "Per esito", "Operazioni"):
        assert italian in page, italian
    for english in ("Export as CSV", "audit event", "By outcome", ">Operations<"):
        assert english not in page, english


def test_the_unsubscribe_page_is_italian_for_an_italian_browser() -> None:
    contact = granted_contact(email="mario@example.it")
    path = _path(links.unsubscribe_url(contact_id=contact.pk, channel=Channel.EMAIL))
    client = Client()
    page = _page(client, path, ITALIAN)
    assert '<html lang="it">' in page
    for italian in (
        "Annullare l'iscrizione via Email?",
        "<title>Annulla l'iscrizione</title>",
        "Inviatemi",
    ):
        assert italian in page, italian
    for english in ("Unsubscribe", "Email me a link"):
        assert english not in page, english
    done = client.post(
        path, {"confirm": "yes"}, headers={"Accept-Language": ITALIAN}
    ).content.decode()
    assert "L'iscrizione è stata annullata" in done and "You are unsubscribed" not in done


def test_the_preference_centre_is_italian_down_to_channel_names_and_script_texts() -> None:
    contact = granted_contact(email="giulia@example.it")
    page = _page(Client(), _path(links.preference_url(contact_id=contact.pk)), ITALIAN)
    for italian in (
        "Le Sue preferenze",
        "Come possiamo contattarLa per novità e offerte?",
        "Notifiche push web",
        "Telefono",
        "Salva",
        'data-msg-on="Le notifiche sono attive in questo browser."',
    ):
        assert italian in page, italian
    for english in ("Your preferences", "news and offers", "Web push", ">Save<", "Phone"):
        assert english not in page, english


def test_the_language_picker_choice_wins_over_the_browser(admin_client: Client) -> None:
    response = admin_client.post("/i18n/setlang/", {"language": "it", "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "it"
    page = _page(admin_client, "/admin/", "en")
    assert "Area di lavoro" in page and ">Workspace<" not in page
    # A language we do not translate into is not offered: a German choice and a German browser
    # get the install's English, never Django's own German.
    admin_client.post("/i18n/setlang/", {"language": "de", "next": "/admin/"})
    page = _page(admin_client, "/admin/", "de")
    assert 'lang="en"' in page and ">Workspace<" in page and "Verwaltung" not in page


def test_an_owner_keeps_every_right_under_an_italian_browser(owner_client: Client) -> None:
    # Role groups are found by name: a name read in the request's language ("Workspace
    # Proprietario") would find no group, and an Italian owner would lose every permission.
    page = _page(owner_client, "/admin/contacts/contact/", ITALIAN)
    assert "Scegli contatto da modificare" in page and "Select contact" not in page
    api = owner_client.get("/api/v1/contacts/", headers={"Accept-Language": ITALIAN})
    assert api.status_code == 200, api.content


def test_the_outage_banner_and_the_reroute_pages_speak_italian(
    owner_client: Client, drill_worker: Any
) -> None:
    from outages.windows import outage_declare

    outage_declare(network="instagram", reason="Instagram API 503", actor="ops")
    index = _page(owner_client, "/admin/", ITALIAN)
    assert "Disservizio aperto:" in index and "Open outage" not in index
    dashboard = _page(owner_client, "/admin/campaigns/reroute/dashboard/", ITALIAN)
    for italian in (
        "Disservizi e reindirizzamenti",
        "non disponibile dal",
        "Si aggiorna",
        "A rischio nelle prossime 24 ore",
    ):
        assert italian in dashboard, italian
    assert "Refreshes every" not in dashboard and " down since " not in dashboard
    drill = _page(owner_client, "/admin/campaigns/reroute/drill/?network=instagram", ITALIAN)
    assert "andasse giù ora" in drill and 'esercitazione"' in drill
    assert "went down now" not in drill and "Run the drill" not in drill
