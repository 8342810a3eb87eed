"""Publishing one SocialPost: claim it, call the network, record what happened.

A post is published only by the caller whose UPDATE moved it from ``pending`` to ``publishing``
(or, after an unknown outcome, from ``unknown`` with ``republished`` still false), so a task
delivered twice or two workers holding the same id cannot post twice. The network call runs
outside any transaction.

Outcomes: published (external id); transient -> pending again with back-off and jitter, until
CAMPAIGNS_PUBLISH_MAX_ATTEMPTS; throttled -> pending until the network's retry-after;
permanent -> failed with a reason naming the account; unknown -> ``unknown``, then the account's
recent posts are checked before anything else: found -> published with that id; not found ->
one more publish, never a second.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from campaigns.accounts import social_account_ref
from campaigns.content import campaign_post_request
from campaigns.dispatcher import ACTIVE_STATUSES, NetworkDown, posts_route
from campaigns.models import AttemptKind, PostStatus, SocialNetwork, SocialPost
from campaigns.rollup import campaign_status_rollup
from campaigns.self_detection import (
    network_health_check,
    outcome_counts_toward_outage,
    publish_attempt_record,
)
from delivery.publishers import publisher_for
from delivery.publishers.base import (
    Publisher,
    PublishError,
    PublishPermanent,
    PublishThrottled,
    PublishUnknown,
)

logger = logging.getLogger(__name__)

# Clock skew between us and the network: look a little before our own attempt started.
FIND_RECENT_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class PublishReport:
    post_id: int
    # published, retry, failed, unknown, rerouted, noop
    outcome: str
    retry_after_s: float | None = None
    detail: str = ""


def publish_backoff_s(*, attempt: int) -> float:
    """Exponential back-off with jitter (half to full of the step), capped."""
    base = float(settings.CAMPAIGNS_PUBLISH_RETRY_BASE_S)
    step = min(float(settings.CAMPAIGNS_PUBLISH_RETRY_MAX_S), base * 2 ** max(0, attempt - 1))
    return step * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security  # nosec B311


def social_post_publish(  # noqa: PLR0911 - one return per guard reads best
    *,
    post_id: int,
    publisher: Publisher | None = None,
    network_down: NetworkDown | None = None,
) -> PublishReport:
    """Publish (or reconcile) one post; the report says whether and when to call again."""
    post = SocialPost.objects.select_related("campaign", "account").filter(pk=post_id).first()
    if post is None:
        return PublishReport(post_id, "noop", detail="no such post")
    if post.campaign.status not in ACTIVE_STATUSES:
        return PublishReport(post_id, "noop", detail=f"campaign is {post.campaign.status}")
    if post.network == SocialNetwork.WHATSAPP and post.status in (
        PostStatus.PUBLISHING,
        PostStatus.UNKNOWN,
    ):
        return _whatsapp_settle(post)
    publisher = publisher or publisher_for(network=post.network)
    if post.status == PostStatus.UNKNOWN:
        return _reconcile(post, publisher)
    if post.status != PostStatus.PENDING:
        return PublishReport(post_id, "noop", detail=f"post is {post.status}")
    now = timezone.now()
    if post.next_attempt_at is not None and post.next_attempt_at > now:
        # An early duplicate of the task: the message that set the back-off is still queued
        # (or the sweeper takes over), so this one must not start a second retry chain.
        return PublishReport(post_id, "noop", detail="not due yet")
    routed = posts_route(
        post_ids=[post_id], enqueue_publish=lambda _id: None, network_down=network_down
    )
    if routed.rerouted:
        return PublishReport(post_id, "rerouted", detail="the network has an open outage")
    claimed = SocialPost.objects.filter(pk=post_id, status=PostStatus.PENDING).update(
        status=PostStatus.PUBLISHING,
        attempts=F("attempts") + 1,
        publishing_started_at=now,
        updated_at=now,
    )
    if not claimed:
        return PublishReport(post_id, "noop", detail="claimed by someone else")
    post.refresh_from_db(fields=["attempts", "republished"])
    return _publish(post, publisher, started=now)


def _account_label(post: SocialPost) -> str:
    return f"{post.account.get_network_display()} account “{post.account.display_name}”"


def _publish(post: SocialPost, publisher: Publisher, *, started: datetime) -> PublishReport:
    if post.network == SocialNetwork.WHATSAPP:
        # One-to-one: the post becomes a template message per consented contact (Deliveries),
        # and stays publishing until WhatsApp accepted them (campaigns/whatsapp.py).
        from campaigns.whatsapp import campaign_whatsapp_send

        SocialPost.objects.filter(pk=post.pk).update(next_attempt_at=None)
        campaign_whatsapp_send(post=post)
        publish_attempt_record(
            workspace_id=post.workspace_id,
            network=post.network,
            kind=AttemptKind.OK,
            account_id=post.account_id,
            post_id=post.pk,
        )
        return _whatsapp_settle(post, planned=True)
    account = social_account_ref(account=post.account)
    if account is None:
        error: PublishError = PublishPermanent(
            "the stored token cannot be decrypted with the configured keys: reconnect it",
            network=post.network,
            needs_reauth=True,
        )
        return _failed(post, error, record=False)
    request = campaign_post_request(
        campaign=post.campaign, network=post.network, account=post.account
    )
    try:
        result = publisher.publish(account=account, post=request)
    except PublishError as exc:
        return _on_error(post, exc)
    publish_attempt_record(
        workspace_id=post.workspace_id,
        network=post.network,
        kind=AttemptKind.OK,
        account_id=post.account_id,
        post_id=post.pk,
    )
    return _published(post, result.external_id, from_status=PostStatus.PUBLISHING)


def _whatsapp_settle(post: SocialPost, *, planned: bool = False) -> PublishReport:
    """A WhatsApp post whose messages are released: published or failed once none waits to be
    accepted, else look again later. ``planned``: this call just planned them."""
    from campaigns.whatsapp import (
        whatsapp_post_outcome,
        whatsapp_post_progress,
        whatsapp_progress_text,
        whatsapp_settle_check_at,
    )

    if post.status == PostStatus.UNKNOWN:
        # The posts sweeper found it publishing too long (its worker died, or its settle check
        # was lost with Redis): plan again (idempotent: nothing twice, unreleased rows released).
        claimed = SocialPost.objects.filter(pk=post.pk, status=PostStatus.UNKNOWN).update(
            status=PostStatus.PUBLISHING, publishing_started_at=timezone.now()
        )
        if not claimed:
            return PublishReport(post.pk, "noop", detail="claimed by someone else")
        post.status = PostStatus.PUBLISHING
        return _publish(post, publisher_for(network=post.network), started=timezone.now())
    if not planned and post.next_attempt_at is None:
        return PublishReport(post.pk, "noop", detail="its messages are still being planned")
    message_id = post.campaign.message_id
    progress = whatsapp_post_progress(message_id=message_id) if message_id else {}
    outcome = whatsapp_post_outcome(progress)
    if outcome is None:
        wait = whatsapp_settle_check_at(post_id=post.pk)
        return PublishReport(post.pk, "retry", retry_after_s=wait, detail="messages still sending")
    text = whatsapp_progress_text(progress)
    if outcome == PostStatus.PUBLISHED:
        return _published(post, text, from_status=PostStatus.PUBLISHING)
    error = PublishPermanent(f"no template message was accepted ({text})", network=post.network)
    return _failed(post, error, record=False)


def _published(
    post: SocialPost, external_id: str, *, from_status: str, reconciled: bool = False
) -> PublishReport:
    now = timezone.now()
    SocialPost.objects.filter(pk=post.pk, status=from_status).update(
        status=PostStatus.PUBLISHED,
        external_id=external_id[:200],
        published_at=now,
        last_error="",
        last_error_code="",
        next_attempt_at=None,
        updated_at=now,
    )
    logger.info(
        "post %s published on %s as %s%s",
        post.pk,
        post.network,
        external_id,
        " (found after an unanswered attempt)" if reconciled else "",
        extra={"post": post.pk, "campaign": post.campaign_id, "network": post.network},
    )
    campaign_status_rollup(campaign_id=post.campaign_id)
    return PublishReport(post.pk, "published", detail=external_id)


def _on_error(post: SocialPost, exc: PublishError) -> PublishReport:  # noqa: PLR0911
    publish_attempt_record(
        workspace_id=post.workspace_id,
        network=post.network,
        kind=exc.kind,
        account_id=post.account_id,
        post_id=post.pk,
        detail=str(exc),
    )
    if outcome_counts_toward_outage(exc.kind):
        network_health_check(network=post.network)
    if isinstance(exc, PublishUnknown):
        return _unknown(post, exc)
    if post.republished and _is_duplicate(exc):
        # The network refuses the second publish as a duplicate: the first one most likely
        # went out after all. Look again rather than call it failed.
        return _unknown(post, exc)
    if isinstance(exc, PublishPermanent):
        return _failed(post, exc, record=False)
    if isinstance(exc, PublishThrottled):
        # Throttling says the network works: it does not use up the transient attempts, but
        # the total stays bounded.
        if post.attempts >= settings.CAMPAIGNS_PUBLISH_MAX_ATTEMPTS * 3:
            return _failed(post, exc, record=False, gave_up=True)
        return _retry(post, exc, max(1.0, exc.retry_after_s))
    if post.attempts >= settings.CAMPAIGNS_PUBLISH_MAX_ATTEMPTS:
        return _failed(post, exc, record=False, gave_up=True)
    return _retry(post, exc, publish_backoff_s(attempt=post.attempts))


def _is_duplicate(exc: PublishError) -> bool:
    # Graph 506, and X's 403 "duplicate content": both publishers say "duplicate post refused".
    return isinstance(exc, PublishPermanent) and (
        exc.code == 506 or exc.detail.startswith("duplicate post refused")
    )


def _error_code(exc: PublishError) -> str:
    if exc.code is not None:
        return f"{exc.code}/{exc.subcode}" if exc.subcode else str(exc.code)
    if exc.http_status is not None:
        return f"http_{exc.http_status}"
    return exc.kind


def _retry(post: SocialPost, exc: PublishError, wait_s: float) -> PublishReport:
    now = timezone.now()
    SocialPost.objects.filter(pk=post.pk, status=PostStatus.PUBLISHING).update(
        status=PostStatus.PENDING,
        next_attempt_at=now + timedelta(seconds=wait_s),
        last_error=f"{exc.detail} (retrying)"[:500],
        last_error_code=_error_code(exc)[:50],
        updated_at=now,
    )
    return PublishReport(post.pk, "retry", retry_after_s=wait_s, detail=exc.detail)


def _failed(
    post: SocialPost, exc: PublishError, *, record: bool = True, gave_up: bool = False
) -> PublishReport:
    if record:
        publish_attempt_record(
            workspace_id=post.workspace_id,
            network=post.network,
            kind=exc.kind,
            account_id=post.account_id,
            post_id=post.pk,
            detail=str(exc),
        )
    reason = f"{_account_label(post)}: {exc.detail}"
    if gave_up:
        reason = f"{reason} (gave up after {post.attempts} attempts)"
    now = timezone.now()
    SocialPost.objects.filter(
        pk=post.pk, status__in=[PostStatus.PUBLISHING, PostStatus.UNKNOWN]
    ).update(
        status=PostStatus.FAILED,
        last_error=reason[:500],
        last_error_code=_error_code(exc)[:50],
        next_attempt_at=None,
        updated_at=now,
    )
    logger.warning(
        "post %s failed: %s",
        post.pk,
        reason,
        extra={"post": post.pk, "campaign": post.campaign_id, "network": post.network},
    )
    campaign_status_rollup(campaign_id=post.campaign_id)
    return PublishReport(post.pk, "failed", detail=reason)


def _unknown(post: SocialPost, exc: PublishError) -> PublishReport:
    now = timezone.now()
    wait = float(settings.CAMPAIGNS_UNKNOWN_CHECK_DELAY_S)
    SocialPost.objects.filter(pk=post.pk, status=PostStatus.PUBLISHING).update(
        status=PostStatus.UNKNOWN,
        last_error=exc.detail[:500],
        last_error_code=_error_code(exc)[:50],
        next_attempt_at=now + timedelta(seconds=wait),
        updated_at=now,
    )
    return PublishReport(post.pk, "unknown", retry_after_s=wait, detail=exc.detail)


def _reconcile(post: SocialPost, publisher: Publisher) -> PublishReport:  # noqa: PLR0911
    """After an unanswered publish: look for the post before anything else."""
    now = timezone.now()
    if post.next_attempt_at is None:
        return PublishReport(post.pk, "noop", detail="unknown outcome left to the marketer")
    if post.next_attempt_at > now:
        return PublishReport(post.pk, "noop", detail="check not due yet")
    account = social_account_ref(account=post.account)
    if account is None:
        return _surface(post, "the token can no longer be decrypted, so the check cannot run")
    request = campaign_post_request(
        campaign=post.campaign, network=post.network, account=post.account
    )
    since = (post.publishing_started_at or post.created_at) - FIND_RECENT_SLACK
    try:
        found = publisher.find_recent(account=account, post=request, since=since)
    except PublishError as exc:
        checks = post.unknown_checks + 1
        if checks >= settings.CAMPAIGNS_UNKNOWN_CHECK_MAX:
            return _surface(post, f"the recent-posts check kept failing ({exc.detail})")
        wait = publish_backoff_s(attempt=checks)
        SocialPost.objects.filter(pk=post.pk, status=PostStatus.UNKNOWN).update(
            unknown_checks=checks, next_attempt_at=now + timedelta(seconds=wait), updated_at=now
        )
        return PublishReport(post.pk, "retry", retry_after_s=wait, detail=exc.detail)
    if found:
        return _published(post, found, from_status=PostStatus.UNKNOWN, reconciled=True)
    if post.republished:
        return _surface(
            post,
            "the network did not answer twice and the post is not among its recent posts",
        )
    # Not found: one more publish, claimed so that only one caller ever makes it.
    claimed = SocialPost.objects.filter(
        pk=post.pk, status=PostStatus.UNKNOWN, republished=False
    ).update(
        status=PostStatus.PUBLISHING,
        republished=True,
        attempts=F("attempts") + 1,
        publishing_started_at=now,
        unknown_checks=F("unknown_checks") + 1,
        updated_at=now,
    )
    if not claimed:
        return PublishReport(post.pk, "noop", detail="claimed by someone else")
    post.refresh_from_db(fields=["attempts", "republished"])
    logger.info(
        "post %s not found after an unanswered attempt: publishing it once more",
        post.pk,
        extra={"post": post.pk, "network": post.network},
    )
    return _publish(post, publisher, started=now)


def _surface(post: SocialPost, why: str) -> PublishReport:
    """Stop trying and say so: the post stays unknown (it may exist) for the marketer."""
    now = timezone.now()
    reason = (
        f"{_account_label(post)}: not sure the post went out: {why}. "
        "Check the account before publishing it by hand."
    )
    SocialPost.objects.filter(pk=post.pk, status=PostStatus.UNKNOWN).update(
        last_error=reason[:500], next_attempt_at=None, updated_at=now
    )
    campaign_status_rollup(campaign_id=post.campaign_id)
    return PublishReport(post.pk, "unknown", detail=reason)
