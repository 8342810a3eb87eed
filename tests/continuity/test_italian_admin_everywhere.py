"""With the browser in Italian, every admin page of every registered model (its changelist and a
change form) and the dashboard show no English left (#17).

What is read: the words people read as the page's own (headings, labels, column titles, choices,
help texts, buttons, filters, messages), not the data shown in them. A text is English when it
holds a word that exists in English and not in Italian; the list is the admin's vocabulary
(every English word of our catalog's msgids that is not also Italian), so a new untranslated
label is caught by the words it is made of.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.test import Client

from tests.harness import redis_keys_delete

pytestmark = pytest.mark.django_db
ITALIAN = {"Accept-Language": "it-IT,it;q=0.9,en;q=0.5"}

# Elements whose text is the page's own words (data sits in <td> and inputs' values, unread).
_OWN_TEXT = re.compile(
    r"<(?P<tag>h1|h2|h3|label|th|legend|option|button|summary|caption|title|li|p|span|div|a)"
    r"(?P<attrs>[^>]*)>(?P<text>[^<]{2,300})<",
)
_WORD = re.compile(r"[A-Za-z]{3,}")
# Tokens that are identifiers, not words: task names, codes, addresses, time zones, numbers.
_IDENTIFIER = re.compile(r"[._:/@#=\d]")
# English words that are Italian too, or names: not evidence of a leftover.
_SHARED_WORDS = """email sms push web api csv xlsx json url html ids twilio sendgrid facebook
    instagram
    whatsapp meta alertmanager grafana kuma pagerduty statuspage datadog django vapid iana utc
    bcp crontab cron token webhook webhooks hmac sha bearer basic post get gsm ucs stop start
    help info marketing drill dashboard report link online offline spam tag tags test demo admin
    username password staff superuser server provider feed media reel story hold reroute solar
    opt out double uptime better stack sid auth endpoint backend failover home continuity app
    bot ecdsa secret crm slug"""
_SHARED = set(_SHARED_WORDS.split())
# Apps whose admin is not ours and has no Italian catalog at all (django-celery-beat), and
# Django's auth, whose permission names are stored in English: see docs/configuration.md.
NOT_OURS = {"auth", "django_celery_beat"}
# Known leftovers, by page: each would be checked to still be the only English. None now: keep
# it empty, a new leftover is translated rather than listed.
OTHERS_OWN: dict[str, set[str]] = {}


def _english_vocabulary() -> set[str]:
    """Every word of our catalog's English msgids that its Italian never uses."""
    po = (Path(settings.BASE_DIR) / "locale" / "it" / "LC_MESSAGES" / "django.po").read_text()
    ids = " ".join(re.findall(r'^msgid "(.*)"$', po, flags=re.M))
    strs = " ".join(re.findall(r'^msgstr "(.*)"$', po, flags=re.M))
    italian = {w.lower() for w in _WORD.findall(strs)}
    return {w.lower() for w in _WORD.findall(ids)} - italian - _SHARED


@pytest.fixture
def stocked(settings: Any, tmp_path: Path) -> None:
    """Rows of every registered model, in the admin's workspace, for their change forms."""
    from campaigns.drill import outage_drill  # noqa: F401 - imported for its models' apps
    from continuity.api_keys import api_key_issue  # noqa: F401
    from outages.windows import outage_declare
    from sandbox.demo import demo_seed

    settings.VAR_DIR = tmp_path
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])
    demo_seed(contacts=40)
    outage_declare(network="instagram", reason="Instagram API 503", actor="ops")


def _composer_and_report_pages(client: Client) -> list[str]:
    """The composer (a campaign of the admin's workspace with fallback content, a segment and
    accounts), its preview and audience fragments, a draft with nothing chosen (its form lists
    what is missing, sentence by sentence: campaigns/validation.py), the calendar, the drill and
    the window report."""
    from campaigns.models import Campaign
    from outages.models import OutageWindow

    listed = client.get("/admin/campaigns/campaign/", headers=ITALIAN).content.decode()
    ids = {int(pk) for pk in re.findall(r'href="/admin/campaigns/campaign/(\d+)/change/', listed)}
    composer = (
        Campaign.objects.filter(
            pk__in=ids, message__isnull=False, segment__isnull=False, accounts__isnull=False
        )
        .order_by("pk")
        .first()
    )
    assert composer is not None, "the demo seed has a campaign with content and an audience"
    draft = Campaign.objects.create(
        workspace=composer.workspace, name="Bozza", fallback_channels=["fax"]
    )
    window = OutageWindow.objects.order_by("-pk").first()
    assert window is not None
    base = f"/admin/campaigns/campaign/{composer.pk}/"
    return [
        f"{base}change/",
        f"{base}preview/",
        f"{base}preview/?language=it",
        f"{base}audience/",
        f"/admin/campaigns/campaign/{draft.pk}/change/",
        "/admin/campaigns/campaign/calendar/",
        "/admin/campaigns/reroute/drill/?network=instagram",
        f"/admin/campaigns/reroute/report/{window.pk}/",
    ]


def _public_pages() -> list[str]:
    """The unsubscribe page, the preference centre and the double opt-in confirmation of an
    Italian contact (the public pages speak the contact's language, not the browser's)."""
    from contacts import links
    from contacts.models import Contact, Purpose

    contact = Contact.objects.filter(email__gt="").order_by("pk").first()
    assert contact is not None
    Contact.objects.filter(pk=contact.pk).update(locale="it")
    urls = [
        links.unsubscribe_url(contact_id=contact.pk),
        links.preference_url(contact_id=contact.pk),
        links.double_opt_in_url(contact_id=contact.pk, purpose=Purpose.MARKETING),
    ]
    return [re.sub(r"^https?://[^/]+", "", url) for url in urls]


def _data_words() -> set[str]:
    """Words of what the demo seed wrote (names, campaign texts, workspace names): data shown in
    the page, whatever the interface's language."""
    from campaigns.models import Campaign, SocialAccount
    from continuity.models import Workspace
    from delivery.models import Message

    texts: list[str] = []
    texts += Workspace.objects.values_list("name", flat=True)
    texts += Campaign.objects.values_list("name", flat=True)
    texts += SocialAccount.objects.values_list("display_name", flat=True)
    for row in Message.objects.values():
        texts += [str(value) for value in row.values()]
    for model in apps_models("campaigns"):
        for row in model.objects.values():
            texts += [str(value) for value in row.values() if isinstance(value, str)]
    return {w.lower() for text in texts for w in _WORD.findall(text)}


def apps_models(label: str) -> list[Any]:
    from django.apps import apps

    return list(apps.get_app_config(label).get_models())


def _leftovers(page: str, vocabulary: set[str], data: set[str]) -> list[str]:
    found = []
    for match in _OWN_TEXT.finditer(page):
        text = html.unescape(match["text"]).strip()
        if text.startswith(("{", "[")):  # a JSON value shown as data
            continue
        words = {
            w.lower()
            for token in text.split()
            if not _IDENTIFIER.search(token)
            for w in _WORD.findall(token)
        }
        if (words - data) & vocabulary:
            found.append(text)
    return found


def test_every_admin_page_is_italian(admin_client: Client, stocked: None) -> None:
    vocabulary = _english_vocabulary()
    # The declared outage's reason, and its signal's incident key (a code, shown as data).
    data = _data_words() | {"instagram", "api", "declared"}
    pages = ["/admin/", "/admin/campaigns/reroute/dashboard/"]
    for model in admin.site._registry:
        opts = model._meta
        if opts.app_label not in NOT_OURS:
            pages.append(f"/admin/{opts.app_label}/{opts.model_name}/")
    pages += _composer_and_report_pages(admin_client)
    public = _public_pages()
    problems: dict[str, list[str]] = {}
    for path in public:
        response = Client().get(path, headers=ITALIAN)
        assert response.status_code == 200, (path, response.status_code)
        if leftovers := _leftovers(response.content.decode(), vocabulary, data):
            problems[path] = leftovers
    for path in list(pages):
        response = admin_client.get(path, headers=ITALIAN)
        assert response.status_code == 200, (path, response.status_code)
        page = response.content.decode()
        if path.count("/") == 4 and path != pages[1]:  # a changelist: open its first row too
            first = re.search(rf'href="({re.escape(path)}(\d+)/change/[^"]*)"', page)
            if first:
                change = html.unescape(first.group(1))
                form = admin_client.get(change, headers=ITALIAN)
                assert form.status_code == 200, (change, form.status_code)
                if leftovers := _leftovers(form.content.decode(), vocabulary, data):
                    problems[change] = leftovers
        if leftovers := _leftovers(page, vocabulary, data):
            problems[path] = leftovers
    for path, texts in list(problems.items()):
        known = next((v for k, v in OTHERS_OWN.items() if path.startswith(k)), set())
        left = {t for t in texts if t not in known and not any(k in t for k in known)}
        if left:
            problems[path] = sorted(left)
        else:
            del problems[path]
    assert problems == {}, "\n".join(f"{p}: {t}" for p, t in problems.items())
