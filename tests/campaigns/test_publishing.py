"""Publishing posts through the real publishers to the sandbox fakes: outcomes, retries,
unknown outcomes reconciled, and the campaign's status rolled up."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Campaign, CampaignStatus, PostStatus, PublishAttempt, SocialPost
from campaigns.publishing import publish_backoff_s, social_post_publish
from sandbox.graph import GraphFake
from sandbox.x import XFake
from tests.campaigns.factories import make_account, make_campaign
from tests.campaigns.helpers import claim, publish_until_settled

pytestmark = pytest.mark.django_db


def test_a_post_publishes_once_and_the_campaign_is_published(graph: GraphFake, x: XFake) -> None:
    fb = make_account(network="facebook")
    ig = make_account(network="instagram")
    tw = make_account(network="x")
    campaign = make_campaign(accounts=[fb, ig, tw], due_in_s=-1)
    posts = claim(campaign)
    assert {p.network for p in posts} == {"facebook", "instagram", "x"}

    publish_until_settled([p.pk for p in posts])

    assert set(SocialPost.objects.values_list("status", flat=True)) == {PostStatus.PUBLISHED}
    assert all(p.external_id for p in SocialPost.objects.all())
    assert len(graph.posts_for(fb.page_id)) == 1
    assert len(graph.posts_for(ig.ig_user_id)) == 1
    assert len(x.tweets) == 1
    assert Campaign.objects.get().status == CampaignStatus.PUBLISHED
    assert PublishAttempt.objects.filter(kind="ok").count() == 3


def test_a_task_delivered_twice_publishes_once(graph: GraphFake) -> None:
    campaign = make_campaign(accounts=[make_account()], due_in_s=-1)
    (post,) = claim(campaign)
    first = social_post_publish(post_id=post.pk)
    second = social_post_publish(post_id=post.pk)
    assert (first.outcome, second.outcome) == ("published", "noop")
    assert len(graph.posts) == 1


def test_an_expired_token_fails_that_account_only_and_names_it(graph: GraphFake) -> None:
    good = [make_account(), make_account()]
    expired = make_account(token="expired-page-token", display_name="Shop Lyon")
    campaign = make_campaign(accounts=[*good, expired], due_in_s=-1)
    posts = claim(campaign)

    publish_until_settled([p.pk for p in posts])

    failed = SocialPost.objects.get(account=expired)
    assert failed.status == PostStatus.FAILED
    assert "Shop Lyon" in failed.last_error
    assert "expired" in failed.last_error
    assert failed.last_error_code == "190/463"
    assert failed.attempts == 1  # permanent: never retried
    for account in good:
        assert SocialPost.objects.get(account=account).status == PostStatus.PUBLISHED
        assert len(graph.posts_for(account.page_id)) == 1
    assert Campaign.objects.get().status == CampaignStatus.PARTIALLY_PUBLISHED


def test_transient_failures_retry_with_backoff_then_publish(graph: GraphFake) -> None:
    account = make_account()
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    graph.fail(code=1, token=None, account=account.page_id, remaining=2)

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["retry", "retry", "published"]
    post.refresh_from_db()
    assert (post.status, post.attempts) == (PostStatus.PUBLISHED, 3)
    assert len(graph.posts_for(account.page_id)) == 1


def test_transient_failures_give_up_after_the_bound(graph: GraphFake, settings: Any) -> None:
    settings.CAMPAIGNS_PUBLISH_MAX_ATTEMPTS = 3
    account = make_account(display_name="Main page")
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    graph.fail(code=2, account=account.page_id)

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["retry", "retry", "failed"]
    post.refresh_from_db()
    assert post.status == PostStatus.FAILED
    assert "Main page" in post.last_error and "gave up after 3 attempts" in post.last_error
    assert Campaign.objects.get().status == CampaignStatus.FAILED


def test_throttling_waits_for_the_retry_after_without_counting_as_a_failure(
    graph: GraphFake,
) -> None:
    account = make_account()
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    graph.fail(code=4, account=account.page_id, remaining=1)

    report = social_post_publish(post_id=post.pk)

    post.refresh_from_db()
    assert report.outcome == "retry"
    assert report.retry_after_s is not None and report.retry_after_s >= 1
    assert post.status == PostStatus.PENDING
    assert post.next_attempt_at is not None
    # Not due yet: a second delivery of the task does nothing.
    assert social_post_publish(post_id=post.pk).detail == "not due yet"
    assert graph.posts == []


def test_backoff_grows_and_is_jittered(settings: Any) -> None:
    settings.CAMPAIGNS_PUBLISH_RETRY_BASE_S = 4.0
    settings.CAMPAIGNS_PUBLISH_RETRY_MAX_S = 60.0
    assert 2.0 <= publish_backoff_s(attempt=1) <= 4.0
    assert 8.0 <= publish_backoff_s(attempt=3) <= 16.0
    assert 30.0 <= publish_backoff_s(attempt=10) <= 60.0
    assert len({publish_backoff_s(attempt=3) for _ in range(20)}) > 1


def test_x_timing_out_after_accepting_is_found_among_recent_posts_and_never_posted_twice(
    x: XFake, settings: Any
) -> None:
    settings.SOCIAL_READ_TIMEOUT_S = 0.5
    account = make_account(network="x", token="x-token-1")
    x.add_user("x-token-1", account.x_user_id)
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    x.fault_on("POST", r"/2/tweets", mode="timeout", after_accept=True, delay_s=1.0, remaining=1)

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["unknown", "published"]
    post.refresh_from_db()
    assert post.status == PostStatus.PUBLISHED
    assert post.republished is False
    assert len(x.tweets) == 1
    assert post.external_id == x.tweets[0].id
    assert len(x.requests_to(r"/2/tweets$")) == 1


def test_an_unanswered_publish_that_did_not_happen_is_published_again_once(
    x: XFake, settings: Any
) -> None:
    settings.SOCIAL_READ_TIMEOUT_S = 0.5
    account = make_account(network="x", token="x-token-2")
    x.add_user("x-token-2", account.x_user_id)
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    # The request is read but never acted on: the check finds nothing.
    x.fault_on("POST", r"/2/tweets", mode="timeout", after_accept=False, delay_s=1.0, remaining=1)

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["unknown", "published"]
    post.refresh_from_db()
    assert (post.status, post.republished) == (PostStatus.PUBLISHED, True)
    assert len(x.tweets) == 1


def test_two_unanswered_publishes_are_surfaced_never_tried_a_third_time(
    x: XFake, settings: Any
) -> None:
    settings.SOCIAL_READ_TIMEOUT_S = 0.5
    account = make_account(network="x", display_name="@shop", token="x-token-3")
    x.add_user("x-token-3", account.x_user_id)
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    x.fault_on("POST", r"/2/tweets", mode="timeout", after_accept=False, delay_s=1.0)

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["unknown", "unknown", "unknown"]
    post.refresh_from_db()
    assert post.status == PostStatus.UNKNOWN
    assert post.next_attempt_at is None
    assert "@shop" in post.last_error and "not sure the post went out" in post.last_error
    assert len(x.requests_to(r"/2/tweets$")) == 2
    assert social_post_publish(post_id=post.pk).outcome == "noop"
    assert Campaign.objects.get().status == CampaignStatus.FAILED


def test_instagram_publish_timing_out_after_accepting_is_reconciled(
    graph: GraphFake, settings: Any
) -> None:
    settings.SOCIAL_READ_TIMEOUT_S = 0.5
    account = make_account(network="instagram")
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    graph.fault_on(
        "POST", r"/media_publish$", mode="timeout", after_accept=True, delay_s=1.0, remaining=1
    )

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["unknown", "published"]
    assert len(graph.posts_for(account.ig_user_id)) == 1


def test_a_cancelled_campaign_publishes_nothing(graph: GraphFake) -> None:
    from campaigns.lifecycle import campaign_cancel

    campaign = make_campaign(accounts=[make_account()], due_in_s=-1)
    (post,) = claim(campaign)
    campaign_cancel(campaign=campaign)
    assert social_post_publish(post_id=post.pk).outcome == "noop"
    post.refresh_from_db()
    assert post.status == PostStatus.SKIPPED
    assert graph.posts == []


def test_a_republish_refused_as_duplicate_is_checked_again_not_failed(
    x: XFake, settings: Any
) -> None:
    settings.SOCIAL_READ_TIMEOUT_S = 0.5
    account = make_account(network="x", token="x-token-4")
    # The timeline is read under another user id, so the check cannot see the first post.
    (post,) = claim(make_campaign(accounts=[account], due_in_s=-1))
    x.fault_on("POST", r"/2/tweets", mode="timeout", after_accept=True, delay_s=1.0, remaining=1)

    reports = publish_until_settled([post.pk])[post.pk]

    assert [r.outcome for r in reports] == ["unknown", "unknown", "unknown"]
    post.refresh_from_db()
    assert post.status == PostStatus.UNKNOWN
    assert len(x.tweets) == 1
