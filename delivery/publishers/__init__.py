"""Social publishers, one module per network behind delivery.publishers.base.Publisher."""

from __future__ import annotations

from delivery.publishers.base import (
    FACEBOOK,
    INSTAGRAM,
    NETWORKS,
    WHATSAPP,
    Publisher,
    SocialPostRequest,
    X,
)


def publisher_for(*, network: str) -> Publisher:
    """A new publisher for ``network`` (each owns a requests Session: keep one per worker)."""
    from delivery.publishers.facebook import FacebookPublisher
    from delivery.publishers.instagram import InstagramPublisher
    from delivery.publishers.whatsapp import WhatsAppPublisher
    from delivery.publishers.x import XPublisher

    classes: dict[str, type[Publisher]] = {
        FACEBOOK: FacebookPublisher,
        INSTAGRAM: InstagramPublisher,
        X: XPublisher,
        WHATSAPP: WhatsAppPublisher,
    }
    try:
        return classes[network]()
    except KeyError:
        raise ValueError(f"unknown network {network!r}; expected one of {NETWORKS}") from None


def post_content_problems(*, network: str, post: SocialPostRequest) -> list[str]:
    """What the network would reject in this post, as sentences for the campaign editor."""
    return publisher_for(network=network).content_problems(post=post)
