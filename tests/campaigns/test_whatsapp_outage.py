"""WhatsApp's edges: queued is not published, an outage mid-send reroutes what WhatsApp never
accepted, and only delivered or read counts as reached."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, PostStatus, Reroute, SocialPost
from campaigns.publishing import social_post_publish
from campaigns.reroute import reroute_plan_next_slice, reroute_window_opened
from campaigns.whatsapp import whatsapp_fallback_plan
from contacts.models import Channel, Contact
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.senders import channel_sender
from delivery.signals import whatsapp_undelivered
from delivery.states import DeliveryStatus as S
from outages.windows import outage_declare
from sandbox.graph import GraphFake
from tests.campaigns.factories import make_account, make_campaign, make_message
from tests.delivery.test_materialize import contact_with

pytestmark = pytest.mark.django_db
NO_QUIET = override_settings(REROUTE_QUIET_HOURS={}, REROUTE_FREQUENCY_CAP_PER_DAY=0)


@pytest.fixture
def graph(settings: Any) -> Iterator[GraphFake]:
    with GraphFake() as fake:
        settings.SOCIAL_GRAPH_BASE_URL = fake.url
        settings.SOCIAL_READ_TIMEOUT_S = 2
        channel_sender.cache_clear()
        yield fake
        channel_sender.cache_clear()


def whatsapp_campaign(contacts: int) -> tuple[Campaign, SocialPost, list[Contact]]:
    people = [contact_with(Channel.WHATSAPP, Channel.EMAIL, push=False) for _ in range(contacts)]
    account = make_account(network="whatsapp")
    campaign = make_campaign(
        accounts=[account],
        segment=None,
        message=make_message(whatsapp_template="autumn_sale"),
        status=CampaignStatus.PUBLISHING,
        due_in_s=-60,
        fallback_channels=["email"],
    )
    post = SocialPost.objects.create(
        workspace_id=campaign.workspace_id, campaign=campaign, account=account, network="whatsapp"
    )
    return campaign, post, people


def whatsapp_ids(campaign: Campaign) -> list[int]:
    return list(
        Delivery.objects.filter(message_id=campaign.message_id, channel=Channel.WHATSAPP)
        .order_by("contact_id")
        .values_list("id", flat=True)
    )


def message_id_of(campaign: Campaign) -> int:
    assert campaign.message_id is not None
    return campaign.message_id


def reroute_now(campaign: Campaign) -> Reroute:
    window = outage_declare(network="whatsapp", reason="test outage", actor="tests")
    assert reroute_window_opened(window_id=window.pk, send=lambda *a, **k: None) == 1
    reroute = Reroute.objects.get(campaign=campaign, network="whatsapp")
    while reroute_plan_next_slice(reroute_id=reroute.pk):
        pass
    return reroute


def fallback_contacts(campaign: Campaign) -> set[int]:
    return set(
        Delivery.objects.filter(message_id=campaign.message_id, channel=Channel.EMAIL).values_list(
            "contact_id", flat=True
        )
    )


@NO_QUIET
def test_a_whatsapp_post_is_published_only_once_whatsapp_accepted_its_messages(
    graph: GraphFake,
) -> None:
    campaign, post, _ = whatsapp_campaign(3)
    assert social_post_publish(post_id=post.pk).outcome == "retry"
    post.refresh_from_db()
    campaign.refresh_from_db()
    assert (post.status, campaign.status) == (PostStatus.PUBLISHING, CampaignStatus.PUBLISHING)
    assert deliveries_send_chunk(channel="whatsapp", ids=whatsapp_ids(campaign)).sent == 3
    report = social_post_publish(post_id=post.pk)
    assert report.outcome == "published"
    assert report.detail == "3 of 3 template messages accepted by WhatsApp"
    post.refresh_from_db()
    campaign.refresh_from_db()
    assert (post.status, campaign.status) == (PostStatus.PUBLISHED, CampaignStatus.PUBLISHED)


@NO_QUIET
def test_a_whatsapp_post_none_of_whose_messages_was_accepted_failed(graph: GraphFake) -> None:
    campaign, post, _ = whatsapp_campaign(2)
    social_post_publish(post_id=post.pk)
    graph.fail(code=131026)  # not a WhatsApp user, for everyone: suppressed at send
    deliveries_send_chunk(channel="whatsapp", ids=whatsapp_ids(campaign))
    assert social_post_publish(post_id=post.pk).outcome == "failed"
    post.refresh_from_db()
    assert post.status == PostStatus.FAILED
    assert "no template message was accepted" in post.last_error


@NO_QUIET
def test_a_whatsapp_outage_mid_send_reroutes_the_messages_whatsapp_never_accepted(
    graph: GraphFake,
) -> None:
    campaign, post, people = whatsapp_campaign(6)
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    assert deliveries_send_chunk(channel="whatsapp", ids=ids[:2]).sent == 2
    graph.fail(code=2, status=500)  # WhatsApp goes down halfway through the send
    assert deliveries_send_chunk(channel="whatsapp", ids=ids[2:4]).deferred == 2
    accepted = len([p for p in graph.posts if p.network == "whatsapp"])
    assert accepted == 2

    reroute_now(campaign)

    post.refresh_from_db()
    assert post.status == PostStatus.REROUTED
    statuses = dict(Delivery.objects.filter(id__in=ids).values_list("contact_id", "status"))
    assert [statuses[c.pk] for c in people] == [S.SENT] * 2 + [S.CANCELLED] * 4
    # Those WhatsApp accepted are not messaged twice; everyone else gets the fallback.
    assert fallback_contacts(campaign) == {c.pk for c in people[2:]}
    # WhatsApp coming back sends nothing more: the rest were cancelled, not left to retry.
    graph.clear_errors()
    deliveries_send_chunk(channel="whatsapp", ids=ids)
    assert len([p for p in graph.posts if p.network == "whatsapp"]) == accepted


@NO_QUIET
@pytest.mark.parametrize(
    ("whatsapp_status", "gets_fallback"),
    [
        (S.DELIVERED, False),
        (S.OPENED, False),  # read
        (S.SENT, False),  # accepted, still settling: it may yet arrive
        (S.UNKNOWN, False),
        (S.UNDELIVERED, True),
        (S.FAILED, True),
        (S.BOUNCED, True),
        (S.SUPPRESSED, True),
    ],
)
def test_only_delivered_or_read_whatsapp_counts_as_reached(
    graph: GraphFake, whatsapp_status: str, gets_fallback: bool
) -> None:
    campaign, post, [person] = whatsapp_campaign(1)
    social_post_publish(post_id=post.pk)
    Delivery.objects.filter(id__in=whatsapp_ids(campaign)).update(status=whatsapp_status)
    reroute_now(campaign)
    assert fallback_contacts(campaign) == ({person.pk} if gets_fallback else set())


@NO_QUIET
def test_a_whatsapp_message_reported_undelivered_gives_its_contact_the_fallback(
    graph: GraphFake, settings: Any
) -> None:
    settings.WHATSAPP_APP_SECRET = "test-app-secret"
    campaign, post, people = whatsapp_campaign(2)
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    assert deliveries_send_chunk(channel="whatsapp", ids=ids).sent == 2
    rows = Delivery.objects.filter(id__in=ids)
    wamids = dict(rows.values_list("contact_id", "provider_message_id"))
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "statuses": [
                                    {"id": wamids[people[0].pk], "status": "delivered"},
                                    {
                                        "id": wamids[people[1].pk],
                                        "status": "failed",
                                        "errors": [{"code": 131049, "title": "not delivered"}],
                                    },
                                ]
                            },
                        }
                    ]
                }
            ],
        }
    ).encode()
    digest = hmac.new(b"test-app-secret", body, hashlib.sha256).hexdigest()
    response = Client().post(
        "/webhooks/whatsapp/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": f"sha256={digest}"},
    )
    assert response.status_code == 200
    reroute_now(campaign)
    assert fallback_contacts(campaign) == {people[1].pk}


def _signed_statuses(statuses: list[dict[str, Any]], secret: str) -> Any:
    body = json.dumps(
        {"entry": [{"changes": [{"field": "messages", "value": {"statuses": statuses}}]}]}
    ).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return Client().post(
        "/webhooks/whatsapp/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": f"sha256={digest}"},
    )


@NO_QUIET
def test_a_failure_reported_after_the_reroute_planned_still_gives_the_fallback(
    graph: GraphFake,
) -> None:
    campaign, post, people = whatsapp_campaign(2)
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    assert deliveries_send_chunk(channel="whatsapp", ids=ids).sent == 2
    reroute = reroute_now(campaign)
    # Both messages were accepted and still settling when the slice ran: no fallback yet.
    assert fallback_contacts(campaign) == set()
    Delivery.objects.filter(id=ids[1]).update(status=S.UNDELIVERED)
    assert (
        whatsapp_fallback_plan(message_id=message_id_of(campaign), contact_ids=[people[1].pk]) == 1
    )
    assert fallback_contacts(campaign) == {people[1].pk}
    # A repeated report plans nothing twice, and the reroute counts what it planned.
    assert (
        whatsapp_fallback_plan(message_id=message_id_of(campaign), contact_ids=[people[1].pk]) == 0
    )
    reroute.refresh_from_db()
    assert reroute.planned.get("email") == 1


@NO_QUIET
def test_without_a_whatsapp_reroute_a_failed_message_plans_no_fallback(graph: GraphFake) -> None:
    campaign, post, people = whatsapp_campaign(1)
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    deliveries_send_chunk(channel="whatsapp", ids=ids)
    Delivery.objects.filter(id__in=ids).update(status=S.UNDELIVERED)
    assert (
        whatsapp_fallback_plan(message_id=message_id_of(campaign), contact_ids=[people[0].pk]) == 0
    )
    assert fallback_contacts(campaign) == set()


@NO_QUIET
def test_a_failed_status_announces_its_contact_after_commit(
    graph: GraphFake, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WHATSAPP_APP_SECRET = "s3"
    campaign, post, people = whatsapp_campaign(2)
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    deliveries_send_chunk(channel="whatsapp", ids=ids)
    rows = Delivery.objects.filter(id__in=ids)
    wamids = dict(rows.values_list("contact_id", "provider_message_id"))
    heard: list[dict[int, list[int]]] = []

    def listen(sender: Any, message_contacts: dict[int, list[int]], **_: Any) -> None:
        heard.append(message_contacts)

    whatsapp_undelivered.connect(listen, dispatch_uid="test-listen")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = _signed_statuses(
                [
                    {"id": wamids[people[0].pk], "status": "delivered"},
                    {"id": wamids[people[1].pk], "status": "failed"},
                ],
                "s3",
            )
    finally:
        whatsapp_undelivered.disconnect(dispatch_uid="test-listen")
    assert response.status_code == 200
    assert heard == [{campaign.message_id: [people[1].pk]}]


@NO_QUIET
def test_a_whatsapp_post_the_sweeper_found_stuck_is_planned_again_and_settles(
    graph: GraphFake,
) -> None:
    campaign, post, _ = whatsapp_campaign(2)
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    # Its settle message was lost: the posts sweeper turns a long "publishing" into unknown.
    SocialPost.objects.filter(pk=post.pk).update(
        status=PostStatus.UNKNOWN, next_attempt_at=timezone.now()
    )
    assert social_post_publish(post_id=post.pk).outcome == "retry"
    assert whatsapp_ids(campaign) == ids, "planned again, nothing twice"
    deliveries_send_chunk(channel="whatsapp", ids=ids)
    assert social_post_publish(post_id=post.pk).outcome == "published"
    assert len([p for p in graph.posts if p.network == "whatsapp"]) == 2


@NO_QUIET
def test_a_duplicate_task_leaves_a_post_whose_messages_are_being_planned_alone(
    graph: GraphFake,
) -> None:
    _, post, _ = whatsapp_campaign(1)
    SocialPost.objects.filter(pk=post.pk).update(status=PostStatus.PUBLISHING, next_attempt_at=None)
    report = social_post_publish(post_id=post.pk)
    assert (report.outcome, report.detail) == ("noop", "its messages are still being planned")
    post.refresh_from_db()
    assert post.status == PostStatus.PUBLISHING
