"""Instagram feed images: create a media container, wait until it is FINISHED, media_publish.

Only the last step makes the post visible, so only it is ambiguous when its answer is lost. A
container that ends in ERROR or EXPIRED is permanent for this content; one still IN_PROGRESS
after the bounded wait is transient (a new attempt makes a new container: unpublished ones
expire on their own after 24 hours).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

import requests
from django.conf import settings

from delivery.publishers.base import (
    INSTAGRAM,
    ConnectionStatus,
    HttpCall,
    PublishPermanent,
    PublishResult,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
    text_normalized,
    text_with_link,
)
from delivery.publishers.graph_api import GraphPublisher, graph_oldest_match, graph_url

CAPTION_LIMIT = 2200
HASHTAG_LIMIT = 30
MENTION_LIMIT = 20
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_MENTION = re.compile(r"(?<!\w)@[\w.]+")


class InstagramPublisher(GraphPublisher):
    network = INSTAGRAM

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(session=session)
        self.sleep = sleep

    @staticmethod
    def caption(post: SocialPostRequest) -> str:
        # Links are not clickable in captions, but the text still tells people where to go.
        return text_with_link(post.text, post.link)

    def content_problems(self, *, post: SocialPostRequest) -> list[str]:
        problems = []
        if not post.image_url:
            problems.append("Instagram needs an image: add an image URL.")
        elif not post.image_url.lower().startswith(("https://", "http://")):
            problems.append("The Instagram image URL must be a public http(s) URL.")
        caption = self.caption(post)
        if len(caption) > CAPTION_LIMIT:
            problems.append(
                f"Instagram caption is {len(caption)} characters; the limit is {CAPTION_LIMIT}."
            )
        hashtags = len(_HASHTAG.findall(caption))
        if hashtags > HASHTAG_LIMIT:
            problems.append(
                f"Instagram allows {HASHTAG_LIMIT} hashtags; the caption has {hashtags}."
            )
        mentions = len(_MENTION.findall(caption))
        if mentions > MENTION_LIMIT:
            problems.append(
                f"Instagram allows {MENTION_LIMIT} @mentions; the caption has {mentions}."
            )
        return problems

    def publish(self, *, account: SocialAccountRef, post: SocialPostRequest) -> PublishResult:
        if not post.image_url:
            raise PublishPermanent("Instagram needs an image", network=self.network)
        # Creating a container publishes nothing, so a lost answer here is plainly retryable.
        created = self.call(
            account,
            HttpCall(
                "POST",
                graph_url(account, account.ig_user_id, "media"),
                sends=False,
                data={"image_url": post.image_url, "caption": self.caption(post)},
            ),
        )
        container_id = str(created.get("id") or "")
        if not container_id:
            raise PublishTransient("media container answered without an id", network=self.network)
        self._wait_until_finished(account, container_id)
        body = self.call(
            account,
            HttpCall(
                "POST",
                graph_url(account, account.ig_user_id, "media_publish"),
                sends=True,
                data={"creation_id": container_id},
            ),
        )
        media_id = str(body.get("id") or "")
        if not media_id:
            raise PublishUnknown("media_publish answered without an id", network=self.network)
        return PublishResult(network=self.network, external_id=media_id)

    def _wait_until_finished(self, account: SocialAccountRef, container_id: str) -> None:
        attempts = max(1, int(settings.SOCIAL_IG_CONTAINER_POLL_MAX))
        status = ""
        for attempt in range(attempts):
            body = self.call(
                account,
                HttpCall(
                    "GET",
                    graph_url(account, container_id),
                    sends=False,
                    params={"fields": "status_code,status"},
                ),
            )
            status = str(body.get("status_code") or "")
            if status == "FINISHED":
                return
            if status in ("ERROR", "EXPIRED"):
                reason = str(body.get("status") or status)
                raise PublishPermanent(
                    f"Instagram could not prepare the image ({status}: {reason})",
                    network=self.network,
                )
            if status == "PUBLISHED":
                # Never ours to publish again; only a retry with a reused container gets here.
                raise PublishPermanent(
                    "media container was already published", network=self.network
                )
            if attempt < attempts - 1:
                self.sleep(float(settings.SOCIAL_IG_CONTAINER_POLL_INTERVAL_S))
        raise PublishTransient(
            f"media container not ready after {attempts} checks (last status {status or 'none'})",
            network=self.network,
        )

    def find_recent(
        self, *, account: SocialAccountRef, post: SocialPostRequest, since: datetime
    ) -> str | None:
        body = self.call(
            account,
            HttpCall(
                "GET",
                graph_url(account, account.ig_user_id, "media"),
                sends=False,
                params={"fields": "id,caption,timestamp", "limit": 50},
            ),
        )
        return graph_oldest_match(
            body.get("data"),
            time_key="timestamp",
            text_key="caption",
            wanted=text_normalized(self.caption(post)),
            since=since,
        )

    def check_connection(self, *, account: SocialAccountRef) -> ConnectionStatus:
        body = self.node_fetch(account, account.ig_user_id, fields="id,username")
        if isinstance(body, ConnectionStatus):
            return body
        name = str(body.get("username") or "")
        return ConnectionStatus(
            ok=True, detail=f"Instagram @{name or account.ig_user_id}", display_name=name
        )
