"""What a campaign says on each network: its content with that network's overrides applied."""

from __future__ import annotations

from typing import Any

from campaigns.models import Campaign
from delivery.publishers.base import SocialPostRequest

# Fields a per-network override may replace.
OVERRIDABLE = ("text", "link", "image_url")


def campaign_post_request(*, campaign: Campaign, network: str) -> SocialPostRequest:
    """The post for ``network``: the campaign's text, link and image, overridden per network."""
    override: dict[str, Any] = {}
    if isinstance(campaign.overrides, dict):
        candidate = campaign.overrides.get(network)
        if isinstance(candidate, dict):
            override = candidate
    values = {field: str(getattr(campaign, field) or "") for field in OVERRIDABLE}
    for field in OVERRIDABLE:
        if isinstance(override.get(field), str):
            values[field] = override[field]
    return SocialPostRequest(
        text=values["text"], link=values["link"], image_url=values["image_url"]
    )
