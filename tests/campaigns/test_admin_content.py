"""The campaign page's content inlines: the fallback message per channel and per language, and
the post per language, written on the campaign itself (the Message is made behind the scenes);
bad language tags and repeated languages refused on the form; the SMS counter as a static
script; another workspace's message never shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from campaigns.models import Campaign, CampaignPostVariant
from continuity.models import Role
from delivery.models import Message, MessageVariant
from tests.campaigns.factories import make_campaign, make_message
from tests.workspaces import make_member, make_workspace, workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(make_member(workspace=workspace_for_tests(), role=Role.MARKETER))
    return client


def _value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return value


def _form_data(response: Any) -> dict[str, Any]:
    """What the browser would post back unchanged: the campaign form and every inline."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name in form.fields:
        data[name] = _value(form[name].value())
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            value = formset.management_form[name].value()
            data[f"{formset.prefix}-{name}"] = "" if value is None else str(value)
        for sub in formset.forms:
            for name in sub.fields:
                value = _value(sub[name].value())
                if value is False:
                    continue
                data[sub.add_prefix(name)] = value
    return {k: v for k, v in data.items() if v != "" or not k.endswith("-id")}


def _errors(response: Any) -> Any:
    return [
        response.context["adminform"].form.errors,
        [
            (i.formset.prefix, i.formset.errors, i.formset.non_form_errors())
            for i in response.context["inline_admin_formsets"]
        ],
    ]


def _prefix(response: Any, model: type[Any]) -> str:
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.model is model:
            return str(inline.formset.prefix)
    raise AssertionError(f"no inline for {model.__name__}")


def test_content_written_on_the_campaign_page_makes_its_message_and_variants(
    staff: Client,
) -> None:
    campaign = make_campaign(message=None, fallback_channels=["email", "sms"])
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    page = staff.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    # The live counter is a static script; the page carries no inline script.
    assert 'src="/static/campaigns/sms-counter.js"' in body
    assert "data-sms-counter" in body
    data = _form_data(page)
    base = _prefix(page, Message)
    data.update(
        {
            f"{base}-0-email_subject": "Autumn sale, {{ first_name }}",
            f"{base}-0-email_text": "Hello {{ first_name }}",
            f"{base}-0-sms_text": "Sale today",
        }
    )
    variants = _prefix(page, MessageVariant)
    data.update(
        {
            f"{variants}-TOTAL_FORMS": "1",
            f"{variants}-0-language": "it-IT",
            f"{variants}-0-email_subject": "Saldi d'autunno, {{ first_name }}",
            f"{variants}-0-email_text": "Ciao {{ first_name }}",
            f"{variants}-0-sms_text": "È il giorno dei saldi",
        }
    )
    posts = _prefix(page, CampaignPostVariant)
    data.update(
        {
            f"{posts}-TOTAL_FORMS": "1",
            f"{posts}-0-language": "it",
            f"{posts}-0-text": "I saldi d'autunno iniziano ora",
        }
    )
    response = staff.post(url, data)
    assert response.status_code == 302, _errors(response)
    campaign.refresh_from_db()
    assert campaign.message is not None
    assert campaign.message.workspace_id == campaign.workspace_id
    assert campaign.message.email_subject == "Autumn sale, {{ first_name }}"
    assert campaign.message.purpose == campaign.purpose
    variant = MessageVariant.objects.get(message=campaign.message)
    assert (variant.language, variant.sms_text) == ("it", "È il giorno dei saldi")
    assert variant.workspace_id == campaign.workspace_id
    post = CampaignPostVariant.objects.get(campaign=campaign)
    assert (post.language, post.workspace_id) == ("it", campaign.workspace_id)

    # Edited again: the same message, its variant changed in place.
    page = staff.get(url)
    data = _form_data(page)
    variants = _prefix(page, MessageVariant)
    data[f"{variants}-0-sms_text"] = "Saldi: è già ora"
    assert staff.post(url, data).status_code == 302
    assert Message.objects.count() == 1
    assert MessageVariant.objects.get().sms_text == "Saldi: è già ora"


def test_an_unknown_or_repeated_language_is_refused_on_the_form(staff: Client) -> None:
    campaign = make_campaign()
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    page = staff.get(url)
    data = _form_data(page)
    variants = _prefix(page, MessageVariant)
    data.update(
        {
            f"{variants}-TOTAL_FORMS": "3",
            f"{variants}-0-language": "xx",
            f"{variants}-0-sms_text": "?",
            f"{variants}-1-language": "it",
            f"{variants}-1-sms_text": "uno",
            f"{variants}-2-language": "it_IT",
            f"{variants}-2-sms_text": "due",
        }
    )
    response = staff.post(url, data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Unknown language tag" in body
    assert "There is already a variant in it." in body
    assert not MessageVariant.objects.exists()


def test_another_workspaces_message_never_shows_in_the_inlines(staff: Client) -> None:
    other = make_workspace()
    foreign = make_message(workspace=other, email_subject="SECRET OTHER SUBJECT")
    MessageVariant.objects.create(
        workspace=other, message=foreign, language="it", email_subject="SEGRETO ALTRUI"
    )
    campaign = make_campaign()
    # A campaign pointing at a message of another workspace (only a bug could do that).
    Campaign.objects.filter(pk=campaign.pk).update(message=foreign)
    body = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "SEGRETO ALTRUI" not in body
    assert 'value="SECRET OTHER SUBJECT"' not in body


def test_a_viewer_sees_the_content_but_cannot_change_it(client: Client) -> None:
    client.force_login(make_member(workspace=workspace_for_tests(), role=Role.VIEWER))
    campaign = make_campaign()
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="it",
        email_subject="Oggetto italiano",
    )
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Oggetto italiano" in body
    assert 'name="content-messagevariant-0-email_subject"' not in body
