"""/api/v1/campaigns/: CRUD, schedule (refused with the problems), cancel, status counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.models import Campaign, CampaignStatus, PostStatus, SocialPost
from contacts.models import Channel
from continuity.models import Role
from delivery.models import Delivery
from tests.campaigns.factories import make_account, make_campaign, make_message, make_segment
from tests.contacts.factories import make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.MARKETER, username="marketer")
    client = APIClient()
    client.credentials(**bearer(make_api_key(user=user, workspace=workspace)))
    return client


def test_without_a_token_the_api_answers_401_in_the_error_shape() -> None:
    response = APIClient().get("/api/v1/campaigns/")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


def test_create_shows_the_problems_then_edit_and_schedule(api: APIClient) -> None:
    fb, ig = make_account(), make_account(network="instagram")
    created = api.post(
        "/api/v1/campaigns/",
        {"name": "Autumn", "text": "Sale", "accounts": [fb.pk, ig.pk]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body: dict[str, Any] = created.json()
    assert body["status"] == "draft"
    problems = " ".join(body["problems"])
    assert "Instagram needs an image" in problems
    assert "Pick the date and time" in problems

    refused = api.post(f"/api/v1/campaigns/{body['id']}/schedule/", {}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "campaign_not_ready"
    assert any("Instagram needs an image" in p for p in refused.json()["detail"])

    edit = {
        "image_url": "https://cdn.example.com/a.jpg",
        "segment": make_segment().pk,
        "message": make_message().pk,
        "fallback_channels": ["push", "email"],
    }
    patched = api.patch(f"/api/v1/campaigns/{body['id']}/", edit, format="json")
    assert patched.status_code == 200, patched.json()
    when = (timezone.now() + timedelta(hours=1)).isoformat()
    scheduled = api.post(
        f"/api/v1/campaigns/{body['id']}/schedule/", {"scheduled_at": when}, format="json"
    )
    assert scheduled.status_code == 200, scheduled.json()
    assert scheduled.json()["status"] == "scheduled"


def test_scheduling_in_the_past_is_a_400_with_the_reason(api: APIClient) -> None:
    campaign = make_campaign(accounts=[make_account()])
    when = (timezone.now() - timedelta(hours=1)).isoformat()
    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/schedule/", {"scheduled_at": when}, format="json"
    )
    assert response.status_code == 400
    assert any("in the past" in p for p in response.json()["detail"])


def test_bad_fields_get_a_400_naming_them(api: APIClient) -> None:
    response = api.post(
        "/api/v1/campaigns/",
        {"name": "x", "fallback_channels": ["fax"], "overrides": [1], "accounts": [999]},
        format="json",
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert {"fallback_channels", "overrides", "accounts"} <= set(detail)


def test_editing_a_scheduled_campaign_into_an_unready_one_is_refused(api: APIClient) -> None:
    campaign = make_campaign(accounts=[make_account(network="x")], status=CampaignStatus.SCHEDULED)
    response = api.patch(
        f"/api/v1/campaigns/{campaign.pk}/", {"text": "word " * 80, "link": ""}, format="json"
    )
    assert response.status_code == 400
    assert "the limit is 280" in " ".join(response.json()["detail"])
    campaign.refresh_from_db()
    assert not campaign.text.startswith("word")


def test_cancel_then_cancel_again_is_a_409(api: APIClient) -> None:
    campaign = make_campaign(accounts=[make_account()], status=CampaignStatus.SCHEDULED)
    assert api.post(f"/api/v1/campaigns/{campaign.pk}/cancel/").json()["status"] == "cancelled"
    again = api.post(f"/api/v1/campaigns/{campaign.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"] == "campaign_state_conflict"


def test_status_counts_posts_per_network_and_deliveries_per_channel(api: APIClient) -> None:
    fb, tw = make_account(), make_account(network="x")
    campaign = make_campaign(accounts=[fb, tw], status=CampaignStatus.PUBLISHING)
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
        status=PostStatus.FAILED,
    )
    assert campaign.message is not None
    for channel, state in [
        (Channel.EMAIL, "sent"),
        (Channel.EMAIL, "sent"),
        (Channel.SMS, "failed"),
    ]:
        Delivery.objects.create(
            workspace_id=campaign.workspace_id,
            message=campaign.message,
            contact=make_contact(),
            channel=channel,
            status=state,
        )
    body = api.get(f"/api/v1/campaigns/{campaign.pk}/status/").json()
    assert body["networks"] == {"facebook": {"published": 1}, "x": {"failed": 1}}
    assert body["channels"] == {"email": {"sent": 2}, "sms": {"failed": 1}}
    assert {p["network"] for p in body["posts"]} == {"facebook", "x"}


def test_list_filters_by_status_and_delete_only_drafts(api: APIClient) -> None:
    draft = make_campaign()
    make_campaign(status=CampaignStatus.SCHEDULED)
    listed = api.get("/api/v1/campaigns/?status=draft").json()
    assert [c["id"] for c in listed["results"]] == [draft.pk]
    assert api.get("/api/v1/campaigns/?status=nope").status_code == 400
    scheduled = Campaign.objects.get(status=CampaignStatus.SCHEDULED)
    assert api.delete(f"/api/v1/campaigns/{scheduled.pk}/").status_code == 409
    assert api.delete(f"/api/v1/campaigns/{draft.pk}/").status_code == 204
    assert api.get(f"/api/v1/campaigns/{draft.pk}/").status_code == 404
