"""Admin: write-only tokens and the connection check; the campaign list, editor panels
(problems, previews with a sample contact) and the four actions."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialAccount, SocialPost
from continuity.models import Role
from delivery.secrets import token_decrypt
from sandbox.graph import GraphFake
from tests.campaigns.factories import make_account, make_campaign, make_message
from tests.contacts.factories import make_contact
from tests.workspaces import make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    """The owner of the tests' workspace: every campaign right there, social accounts too."""
    client.force_login(make_member(workspace=workspace_for_tests(), role=Role.OWNER))
    return client


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_a_token_set_in_the_admin_is_stored_encrypted_and_never_shown(staff: Client) -> None:
    response = staff.post(
        "/admin/campaigns/socialaccount/add/",
        {
            "network": "facebook",
            "display_name": "Shop page",
            "page_id": "123",
            "new_access_token": "EAAB-secret-token",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account = SocialAccount.objects.get()
    assert account.access_token_encrypted and "EAAB" not in account.access_token_encrypted
    assert token_decrypt(ciphertext=account.access_token_encrypted) == "EAAB-secret-token"
    page = staff.get(f"/admin/campaigns/socialaccount/{account.pk}/change/").content.decode()
    assert "EAAB-secret-token" not in page
    assert account.access_token_encrypted not in page
    # Saving without a new token keeps the stored one.
    staff.post(
        f"/admin/campaigns/socialaccount/{account.pk}/change/",
        {"network": "facebook", "display_name": "Shop page 2", "page_id": "123", "active": "on"},
    )
    account.refresh_from_db()
    assert token_decrypt(ciphertext=account.access_token_encrypted) == "EAAB-secret-token"


def test_check_connection_reports_ok_and_an_expired_token(staff: Client, graph: GraphFake) -> None:
    good = make_account(display_name="Good page")
    bad = make_account(display_name="Old page", token="expired-abc")
    response = staff.post(
        "/admin/campaigns/socialaccount/",
        {"action": "check_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    text = _messages(response)
    assert "Good page" in text and "Old page" in text and "expired" in text
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.last_check_ok, bad.last_check_ok) == (True, False)


def test_the_campaign_list_shows_status_badges_progress_and_lateness(staff: Client) -> None:
    fb, tw = make_account(), make_account(network="x")
    campaign = make_campaign(accounts=[fb, tw], status=CampaignStatus.PUBLISHING, lateness_s=900)
    Campaign.objects.filter(pk=campaign.pk).update(claimed_at=campaign.scheduled_at)
    SocialPost.objects.create(
        workspace_id=campaign.workspace_id,
        campaign=campaign,
        account=fb,
        network="facebook",
        status=PostStatus.PUBLISHED,
    )
    SocialPost.objects.create(
        workspace_id=campaign.workspace_id,
        campaign=campaign,
        account=tw,
        network="x",
        status=PostStatus.PENDING,
    )
    page = staff.get("/admin/campaigns/campaign/").content.decode()
    assert "facebook: 1 published" in page
    assert "x: 1 pending" in page
    assert "1/2 posts" in page
    assert "15 min 0 s late" in page
    assert staff.get("/admin/campaigns/campaign/?scheduled_at__year=2026").status_code == 200


def test_the_editor_shows_problems_and_previews_with_a_sample_contact(staff: Client) -> None:
    campaign = make_campaign(
        accounts=[make_account(network="instagram"), make_account(network="x")],
        image_url="",
        overrides={"x": {"text": "Short for X"}},
    )
    make_contact(first_name="Zoë")  # the segment has no filter: everyone matches
    page = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "Instagram needs an image" in page
    assert "Short for X" in page
    assert "as X counts" in page
    assert "Hello Zoë" in page  # the fallback email and push, with the contact's merge fields
    # "ë" is not in the GSM-7 alphabet: this contact's SMS goes out as UCS-2.
    assert "1 segment(s), UCS-2" in page


def test_actions_schedule_cancel_duplicate_and_publish_now(staff: Client) -> None:
    ready = make_campaign(accounts=[make_account()])
    broken = make_campaign(accounts=[make_account(network="instagram")], image_url="")
    response = staff.post(
        "/admin/campaigns/campaign/",
        {"action": "schedule", "_selected_action": [ready.pk, broken.pk]},
        follow=True,
    )
    text = _messages(response)
    assert "1 campaign scheduled." in text
    assert "Instagram needs an image" in text
    ready.refresh_from_db()
    assert ready.status == CampaignStatus.SCHEDULED

    staff.post(
        "/admin/campaigns/campaign/", {"action": "duplicate", "_selected_action": [ready.pk]}
    )
    assert Campaign.objects.filter(name=f"{ready.name} (copy)", status="draft").exists()

    staff.post("/admin/campaigns/campaign/", {"action": "cancel", "_selected_action": [ready.pk]})
    ready.refresh_from_db()
    assert ready.status == CampaignStatus.CANCELLED

    other = make_campaign(accounts=[make_account()], due_in_s=None)
    staff.post(
        "/admin/campaigns/campaign/", {"action": "publish_now", "_selected_action": [other.pk]}
    )
    other.refresh_from_db()
    assert other.status == CampaignStatus.SCHEDULED and other.scheduled_at is not None


def test_the_fallback_preview_shows_a_hostile_contact_and_message_html_inert(
    staff: Client,
) -> None:
    message = make_message(
        email_html="<p>Hi {{ first_name }}</p><img src=x onerror=alert(1)>"
        "<script>alert(2)</script>",
        sms_text="Hi {{ first_name }}",
    )
    campaign = make_campaign(accounts=[make_account()], message=message)
    make_contact(first_name="<script>alert(1)</script>")
    page = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()

    # The SMS and push previews show the name as text.
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    # The marketer's own HTML is on the page only as escaped text (the content inline's
    # textarea, campaigns/admin_content.py), never as a live element.
    assert "<img src=x onerror" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # The HTML part sits in a frame with no permissions; srcdoc holds the sanitised HTML, the
    # contact's name escaped once by the template and once more for the attribute.
    frames = re.findall(r'<iframe sandbox="" srcdoc="([^"]*)"', page)
    assert len(frames) == 1
    srcdoc = html.unescape(frames[0])
    assert "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>" in srcdoc
    assert '<img src="x">' in srcdoc
    assert "<script" not in srcdoc


def test_a_fallback_template_that_includes_a_missing_file_shows_an_error_not_a_500(
    staff: Client,
) -> None:
    message = make_message(email_text='{% include "nope.html" %}', sms_text="{% if %}")
    campaign = make_campaign(accounts=[make_account()], message=message)
    response = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert response.status_code == 200
    assert response.content.decode().count("[template error: ") == 2


def test_the_preview_of_a_stored_bad_template_shows_the_reason_not_a_500(staff: Client) -> None:
    # Saved before the template rules: create() runs no validator, as rows from before did not.
    message = make_message(
        sms_text='Hi {{ first_name }}\n{% include "admin/base.html" %}',
        email_html="<p>{% debug %}</p>",
        push_body="{{ first_name|safe }}",
    )
    campaign = make_campaign(accounts=[make_account()], message=message)
    make_contact(first_name="Zoë")
    response = staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "[template error: Line 2: the tag {% include %} is not allowed" in page
    assert "[template error: Line 1: the tag {% debug %} is not allowed" in page
    assert "[template error: Line 1: the filter “safe” is not allowed" in page
    # The other parts still preview with the contact.
    assert "Autumn sale, Zoë" in page
