"""The composer's previews and "send me a test" in the language the marketer picks: one select
of the campaign's languages in each panel, passed through to the preview and the test send."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.test import Client

from campaigns.models import Campaign, CampaignPostVariant
from campaigns.test_send import quota_key
from continuity.models import Role
from delivery.models import Delivery, MessageVariant
from sandbox.sendgrid import SendGridFake
from tests.campaigns.factories import make_account, make_campaign
from tests.campaigns.test_composer import _form
from tests.contacts.factories import make_contact
from tests.workspaces import make_member, workspace_for_tests

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def _client(role: str = Role.MARKETER) -> Client:
    member = make_member(workspace=workspace_for_tests(), role=role)
    cache.delete(quota_key(member.pk))
    client = Client()
    client.force_login(member)
    return client


def _italian_campaign() -> Campaign:
    """English base content (the workspace's default), with an Italian variant of the
    fallback message and of the post."""
    workspace = workspace_for_tests()
    workspace.language = "en"
    workspace.save(update_fields=["language"])
    campaign = make_campaign(accounts=[make_account()])
    assert campaign.message is not None
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="it",
        email_subject="Saldi d'autunno, {{ first_name }}",
        email_text="Ciao {{ first_name }}, i saldi sono iniziati.",
        sms_text="Ciao {{ first_name }}: saldi oggi.",
        push_title="Saldi d'autunno",
        push_body="Ciao {{ first_name }}",
    )
    CampaignPostVariant.objects.create(
        workspace=campaign.workspace, campaign=campaign, language="it", text="Saldi da oggi"
    )
    return campaign


def test_the_composer_offers_the_campaigns_languages_in_both_panels() -> None:
    campaign = _italian_campaign()
    page = _client().get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    for where in ("preview", "test"):
        select = re.search(
            rf'<select id="composer-{where}-language" class="composer-language">(.*?)</select>',
            page,
            flags=re.S,
        )
        assert select is not None, where
        values = re.findall(r'<option value="([^"]*)">', select.group(1))
        # The picked contact's own first (what a real send does), then the default's.
        assert values == ["", "en", "it"], (where, values)
    assert 'for="composer-preview-language"' in page and "<script>" not in page


def test_the_preview_shows_the_picked_language_whoever_the_contact_is() -> None:
    campaign = _italian_campaign()
    english = make_contact(first_name="Ann", locale="en-GB")
    client = _client()
    url = f"/admin/campaigns/campaign/{campaign.pk}/preview/"
    italian = client.get(url, {"contact": str(english.pk), "language": "it"}).content.decode()
    assert "Ciao Ann: saldi oggi." in italian and "Saldi da oggi" in italian
    assert "Hi Ann: autumn sale today." not in italian
    # No language: the contact's own (English), as the real send would.
    own = client.get(url, {"contact": str(english.pk), "language": ""}).content.decode()
    assert "Hi Ann: autumn sale today." in own and "Ciao Ann" not in own
    # The editor's refresh posts the form with the language.
    form = _form(campaign, contact=english.pk, language="it-IT")
    posted = client.post(url, form).content.decode()
    assert "Ciao Ann: saldi oggi." in posted
    # A language the campaign has no content in is not on offer: read as no choice, not a 500.
    junk = client.get(url, {"contact": str(english.pk), "language": "<xx>"})
    assert junk.status_code == 200 and "Hi Ann: autumn sale today." in junk.content.decode()


def test_send_me_a_test_sends_the_picked_languages_content(sendgrid: SendGridFake) -> None:
    campaign = _italian_campaign()
    english = make_contact(first_name="Ann", locale="en-GB")
    client = _client()
    url = f"/admin/campaigns/campaign/{campaign.pk}/test-send/"
    response = client.post(
        url,
        {"channel": "email", "address": "me@example.com", "contact": english.pk, "language": "it"},
    )
    assert response.status_code == 200, response.content
    response = client.post(
        url, {"channel": "email", "address": "me@example.com", "contact": english.pk}
    )
    assert response.status_code == 200, response.content
    # The subject's merge field is filled in by the provider (a substitution), not here.
    subjects = [p.subject.split(",")[0] for p in sendgrid.personalizations]
    assert subjects == ["[TEST] Saldi d'autunno", "[TEST] Autumn sale"]
    assert not Delivery.objects.exists()
