"""social.publish_per_s: posts/s one process publishes through the real publishers to the
loopback Graph and X fakes, against a bare requests loop posting the same bodies (the floor).

The figure is the publisher's own overhead (classification, logging, token handling, JSON):
network latency dominates in production, so the ratio to the floor is what matters.
"""

from __future__ import annotations

import time

import requests

from benchmarks._common import emit, setup_django, sized

TOKEN = "sandbox-token"  # noqa: S105 - the fakes accept any token


def main() -> None:
    setup_django()
    from delivery.publishers import publisher_for
    from delivery.publishers.base import SocialAccountRef, SocialPostRequest
    from sandbox.graph import GraphFake
    from sandbox.x import XFake

    posts = sized(full=2000, small=100)
    with GraphFake() as graph, XFake() as x:
        facebook = publisher_for(network="facebook")
        xp = publisher_for(network="x")
        page = SocialAccountRef(
            network="facebook", access_token=TOKEN, page_id="1", base_url=graph.url
        )
        user = SocialAccountRef(network="x", access_token=TOKEN, x_user_id="1", base_url=x.url)
        x.add_user(TOKEN, "1")
        x.add_user("bare-" + TOKEN, "2")

        session = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        bare_x = {"Authorization": f"Bearer bare-{TOKEN}"}
        # Warm both paths (connections, imports) so neither pays start-up inside its timing.
        for n in range(20):
            warm = SocialPostRequest(text=f"warm {n}")
            facebook.publish(account=page, post=warm)
            session.post(
                f"{graph.url}/v24.0/2/feed", data={"message": f"w{n}"}, headers=headers, timeout=5
            )

        started = time.perf_counter()
        for n in range(posts):
            post = SocialPostRequest(text=f"post {n}", link="https://shop.example.com")
            facebook.publish(account=page, post=post)
            xp.publish(account=user, post=post)
        elapsed = time.perf_counter() - started
        rate = 2 * posts / elapsed

        started = time.perf_counter()
        for n in range(posts):
            body = {"message": f"bare {n}", "link": "https://shop.example.com"}
            session.post(f"{graph.url}/v24.0/2/feed", data=body, headers=headers, timeout=5)
            session.post(f"{x.url}/2/tweets", json={"text": f"bare {n}"}, headers=bare_x, timeout=5)
        floor = 2 * posts / (time.perf_counter() - started)
        published = len(graph.posts_for("1")) - 20 + len(x.tweets_by("1"))

    emit(
        "social.publish_per_s",
        rate,
        "posts/s",
        target="publisher overhead small: >= 0.8x a bare requests loop to the same fakes",
        floor=floor,
        posts=2 * posts,
        published=published,
    )


if __name__ == "__main__":
    main()
