"""Facebook Page posts: POST /{page-id}/feed with message and link (Graph API)."""

from __future__ import annotations

from datetime import datetime

from delivery.publishers.base import (
    FACEBOOK,
    ConnectionStatus,
    HttpCall,
    PublishResult,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
    text_normalized,
)
from delivery.publishers.graph_api import GraphPublisher, graph_oldest_match, graph_url

# Facebook's documented maximum for a post's text.
FACEBOOK_TEXT_LIMIT = 63206


class FacebookPublisher(GraphPublisher):
    network = FACEBOOK

    def content_problems(self, *, post: SocialPostRequest) -> list[str]:
        problems = []
        if not post.text.strip() and not post.link:
            problems.append("Facebook needs text or a link.")
        if len(post.text) > FACEBOOK_TEXT_LIMIT:
            problems.append(
                f"Facebook text is {len(post.text)} characters; the limit is {FACEBOOK_TEXT_LIMIT}."
            )
        return problems

    def publish(self, *, account: SocialAccountRef, post: SocialPostRequest) -> PublishResult:
        payload = {"message": post.text}
        if post.link:
            payload["link"] = post.link
        body = self.call(
            account,
            HttpCall("POST", graph_url(account, account.page_id, "feed"), sends=True, data=payload),
        )
        post_id = str(body.get("id") or "")
        if not post_id:
            raise PublishUnknown("feed post answered without an id", network=self.network)
        return PublishResult(network=self.network, external_id=post_id)

    def find_recent(
        self, *, account: SocialAccountRef, post: SocialPostRequest, since: datetime
    ) -> str | None:
        body = self.call(
            account,
            HttpCall(
                "GET",
                graph_url(account, account.page_id, "feed"),
                sends=False,
                params={
                    "fields": "id,message,created_time",
                    "since": int(since.timestamp()),
                    "limit": 100,
                },
            ),
        )
        return graph_oldest_match(
            body.get("data"),
            time_key="created_time",
            text_key="message",
            wanted=text_normalized(post.text),
            since=since,
        )

    def check_connection(self, *, account: SocialAccountRef) -> ConnectionStatus:
        body = self.node_fetch(account, account.page_id, fields="id,name")
        if isinstance(body, ConnectionStatus):
            return body
        name = str(body.get("name") or "")
        return ConnectionStatus(
            ok=True, detail=f"Page {name or account.page_id}", display_name=name
        )
