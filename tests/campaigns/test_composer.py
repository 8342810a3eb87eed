"""The campaign composer: fields instead of JSON, plain labels, validation only where it applies,
Schedule on the form, the audience per channel, previews for a picked contact, test sends that
never become deliveries, and the calendar with outages over it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus
from campaigns.test_send import quota_key
from contacts.consent import Evidence, consent_grant
from contacts.models import Channel, Purpose
from continuity.models import AuditEvent, Role
from delivery.models import Delivery
from outages.models import OutageWindow
from sandbox.sendgrid import SendGridFake
from tests.campaigns.factories import make_account, make_campaign
from tests.contacts.factories import make_contact
from tests.workspaces import make_member, make_workspace, workspace_for_tests

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def _client(role: str = Role.MARKETER) -> Client:
    client = Client()
    client.force_login(make_member(workspace=workspace_for_tests(), role=role))
    return client


def _granted(**fields: Any) -> Any:
    contact = make_contact(**fields)
    for channel in (Channel.EMAIL, Channel.SMS):
        consent_grant(
            contact=contact,
            channel=channel,
            purpose=Purpose.MARKETING,
            evidence=Evidence(source="admin", source_detail="test"),
        )
    return contact


def _form(campaign: Campaign, **changes: Any) -> dict[str, Any]:
    assert campaign.scheduled_at is not None and campaign.segment is not None
    data: dict[str, Any] = {
        "name": campaign.name,
        "scheduled_at_0": timezone.localtime(campaign.scheduled_at).strftime("%Y-%m-%d"),
        "scheduled_at_1": timezone.localtime(campaign.scheduled_at).strftime("%H:%M:%S"),
        "accounts": [a.pk for a in campaign.accounts.all()],
        "text": campaign.text,
        "link": campaign.link,
        "image_url": campaign.image_url,
        "segment": campaign.segment.pk,
        "purpose": campaign.purpose,
        "fallback_channels": campaign.fallback_channels,
        "message": campaign.message_id,
        "send_mode": campaign.send_mode,
        "outage_policy": campaign.outage_policy,
        "hold_then_reroute_minutes": campaign.hold_then_reroute_minutes,
        "max_hold_minutes": campaign.max_hold_minutes,
        "sms_budget_segments": "",
        "on_failback": campaign.on_failback,
    }
    # Every inline on the page (posts, fallback content per language) posts its management form
    # back as the browser would, with its rows unchanged.
    page = _client(Role.OWNER).get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    data.update(_inline_data(page))
    data.update(changes)
    return data


def _inline_data(page: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            value = formset.management_form[name].value()
            data[f"{formset.prefix}-{name}"] = "" if value is None else str(value)
        for sub in formset.forms:
            for name in sub.fields:
                value = sub[name].value()
                if value is None or value is False:
                    continue
                data[sub.add_prefix(name)] = value
    return data


def test_the_composer_has_fields_and_plain_labels_instead_of_json_and_code_words() -> None:
    campaign = make_campaign(accounts=[make_account(display_name="Shop page")])
    make_contact(attributes={"city": "Lyon", "bad__key": 1})
    make_contact(attributes=["not", "an", "object"])
    page = _client().get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "Facebook: Shop page" in page
    assert 'name="override_x_text"' in page and 'name="overrides"' not in page
    assert 'type="checkbox" name="fallback_channels" value="push"' in page
    assert "Move up" in page
    for code_word in ("Lateness s", "Sms budget segments", "Hold then reroute minutes"):
        assert code_word not in page
    assert "SMS budget (message parts)" in page
    assert "{{ first_name }}" in page and "composer-merge-tag" in page
    assert "{{ city }}" in page and "bad__key" not in page  # attribute names in use
    assert "the post waits" not in page  # the default policy reroutes at once
    assert "the fallback messages go out at once" in page
    assert 'name="_schedule"' in page and 'name="_publish_now"' in page
    assert "<script>" not in page and ' style="' not in page


def test_per_network_texts_and_the_channel_order_save_as_the_stored_plan() -> None:
    campaign = make_campaign(accounts=[make_account()])
    response = _client().post(
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
        _form(
            campaign,
            override_x_text="Short for X",
            override_instagram_image_url="https://cdn.example.com/square.jpg",
            fallback_channels=["sms", "email"],
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign.refresh_from_db()
    assert campaign.overrides == {
        "x": {"text": "Short for X"},
        "instagram": {"image_url": "https://cdn.example.com/square.jpg"},
    }
    assert campaign.fallback_channels == ["sms", "email"]
    page = _client().get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    # The saved order comes first on the page, so saving again keeps it.
    assert page.index('value="sms"') < page.index('value="email"') < page.index('value="push"')


def test_a_sent_campaign_shows_no_missing_parts_but_a_draft_does() -> None:
    sent = make_campaign(status=CampaignStatus.REROUTED, segment=None)
    draft = make_campaign(segment=None)
    client = _client()
    sent_page = client.get(f"/admin/campaigns/campaign/{sent.pk}/change/").content.decode()
    draft_page = client.get(f"/admin/campaigns/campaign/{draft.pk}/change/").content.decode()
    assert "Choose at least one social account" not in sent_page
    assert "Choose the audience" not in sent_page
    assert "Nothing to check: this campaign is rerouted." in sent_page
    assert "Choose at least one social account" in draft_page


def test_save_and_schedule_on_the_form_schedules_or_says_why_not() -> None:
    ready = make_campaign(accounts=[make_account()])
    client = _client()
    response = client.post(
        f"/admin/campaigns/campaign/{ready.pk}/change/", {**_form(ready), "_schedule": "1"}
    )
    assert response.status_code == 302
    ready.refresh_from_db()
    assert ready.status == CampaignStatus.SCHEDULED
    broken = make_campaign(accounts=[make_account(network="instagram")], image_url="")
    followed = client.post(
        f"/admin/campaigns/campaign/{broken.pk}/change/",
        {**_form(broken), "_schedule": "1"},
        follow=True,
    )
    text = " ".join(str(m) for m in followed.context["messages"])
    assert "Saved, but not scheduled" in text and "Instagram needs an image" in text
    broken.refresh_from_db()
    assert broken.status == CampaignStatus.DRAFT


def test_a_viewer_cannot_schedule_from_the_form() -> None:
    campaign = make_campaign(accounts=[make_account()])
    response = _client(Role.VIEWER).post(
        f"/admin/campaigns/campaign/{campaign.pk}/change/", {**_form(campaign), "_schedule": "1"}
    )
    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_the_audience_is_counted_per_channel_with_the_reroute_rules() -> None:
    campaign = make_campaign(
        accounts=[make_account(network="instagram"), make_account(network="facebook")],
        fallback_channels=["push", "email", "sms"],
    )
    _granted(email="a@example.com", phone="+393331234567")
    _granted(email="b@example.com", phone="+393331234568")
    _granted(email=None, phone="+393331234569")  # no email: the next channel, SMS
    make_contact(email="c@example.com")  # no consent
    make_contact(workspace=make_workspace(), email="elsewhere@example.com")
    client = _client()
    url = f"/admin/campaigns/campaign/{campaign.pk}/audience/"
    page = client.get(url).content.decode()
    assert "If Facebook or Instagram goes down now, 4 contacts are in the audience" in page
    # Push comes first, but nobody has a push subscription: email, then SMS.
    assert "2 get an email, 1 gets an SMS; 1 has no consent." in page
    Campaign.objects.filter(pk=campaign.pk).update(send_mode="all")
    page = client.get(url).content.decode()
    assert "2 get an email, 3 get an SMS; 1 has no consent." in page
    Campaign.objects.filter(pk=campaign.pk).update(outage_policy="skip")
    assert "nothing would be sent" in client.get(url).content.decode()


def test_the_preview_uses_the_picked_contact_of_this_workspace_only() -> None:
    campaign = make_campaign(accounts=[make_account()])
    mine = make_contact(first_name="Giulia")
    other = make_contact(workspace=make_workspace(), first_name="Mallory")
    client = _client()
    found = client.get("/admin/campaigns/campaign/contacts/search/?q=giu").json()["results"]
    assert [r["id"] for r in found] == [mine.pk]
    assert client.get("/admin/campaigns/campaign/contacts/search/?q=mal").json() == {"results": []}
    url = f"/admin/campaigns/campaign/{campaign.pk}/preview/"
    assert "Hello Giulia" in client.get(url, {"contact": mine.pk}).content.decode()
    foreign = client.get(url, {"contact": other.pk}).content.decode()
    assert "Mallory" not in foreign and "Hello Giulia" in foreign  # the segment's first
    # Unsaved texts from the form are previewed, not saved.
    unsaved = client.post(url, _form(campaign, text="Not saved yet", contact=mine.pk))
    assert "Not saved yet" in unsaved.content.decode()
    campaign.refresh_from_db()
    assert campaign.text != "Not saved yet"


def test_a_test_email_goes_through_the_provider_marked_and_never_as_a_delivery(
    sendgrid: SendGridFake, settings: Any
) -> None:
    settings.CAMPAIGNS_TEST_SENDS_PER_HOUR = 2
    campaign = make_campaign(accounts=[make_account()])
    member = make_member(workspace=workspace_for_tests(), role=Role.MARKETER)
    # The count lives in the cache (Redis), which outlives a test database: start at zero.
    cache.delete(quota_key(member.pk))
    client = Client()
    client.force_login(member)
    url = f"/admin/campaigns/campaign/{campaign.pk}/test-send/"
    response = client.post(url, {"channel": "email", "address": " Me@Example.com "})
    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    assert sendgrid.accepted_recipients == 1
    received = sendgrid.personalizations[0]
    assert received.to == ["me@example.com"]
    assert received.subject.startswith("[TEST] ")
    assert received.headers.get("X-Continuity-Test") == "1"
    assert Delivery.objects.count() == 0  # never planned, reported or swept
    assert AuditEvent.objects.filter(action="campaign.test_send").count() == 1
    bad = client.post(url, {"channel": "sms", "address": "not a phone"})
    assert bad.status_code == 400 and bad.json()["ok"] is False
    client.post(url, {"channel": "email", "address": "me@example.com"})
    limited = client.post(url, {"channel": "email", "address": "me@example.com"})
    assert limited.status_code == 400 and "many tests" in limited.json()["detail"]
    assert sendgrid.accepted_recipients == 2
    viewer = _client(Role.VIEWER).post(url, {"channel": "email", "address": "me@example.com"})
    assert viewer.status_code == 403


def test_the_calendar_shows_campaigns_by_day_with_outages_over_them() -> None:
    due = timezone.now() + timedelta(hours=2)
    campaign = make_campaign(name="Autumn launch", due_in_s=7200)
    OutageWindow.objects.create(network="instagram", opened_at=due - timedelta(minutes=30))
    client = _client()
    for view in ("month", "week"):
        page = client.get(
            "/admin/campaigns/campaign/calendar/",
            {"view": view, "date": timezone.localdate(due).isoformat()},
        ).content.decode()
        assert "Autumn launch" in page and f"/{campaign.pk}/change/" in page
        assert "Instagram down from" in page and "(still down)" in page
    assert client.get("/admin/campaigns/campaign/calendar/?date=nonsense").status_code == 200


def test_the_publish_time_names_the_workspaces_zone() -> None:
    workspace = workspace_for_tests()
    workspace.timezone = "Europe/Rome"
    workspace.save(update_fields=["timezone"])
    campaign = make_campaign()
    page = _client().get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "in Europe/Rome (the workspace's time zone)" in page
