"""The social networks an outage window can cover: a fixed list, extensible by settings."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Network(models.TextChoices):
    FACEBOOK = "facebook", "Facebook"
    INSTAGRAM = "instagram", "Instagram"
    WHATSAPP = "whatsapp", "WhatsApp"
    MESSENGER = "messenger", "Messenger"
    X = "x", "X (Twitter)"
    LINKEDIN = "linkedin", "LinkedIn"
    TIKTOK = "tiktok", "TikTok"
    YOUTUBE = "youtube", "YouTube"
    THREADS = "threads", "Threads"


def network_choices() -> list[tuple[str, str]]:
    """Built-in networks plus OUTAGES_EXTRA_NETWORKS ({"mastodon": "Mastodon"}), for model fields.

    A callable, so adding a network is a setting, not a migration.
    """
    extra: dict[str, str] = getattr(settings, "OUTAGES_EXTRA_NETWORKS", {}) or {}
    return [*Network.choices, *sorted(extra.items())]


def network_is_known(network: str) -> bool:
    return any(value == network for value, _ in network_choices())


def network_label(network: str) -> str:
    return dict(network_choices()).get(network, network)
