"""Factories for the reroute engine's tests: campaigns with posts, audiences and outages."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, SocialAccount, SocialPost
from outages.models import OutageWindow
from outages.windows import outage_declare
from tests.delivery.test_dispatch import make_message
from tests.workspaces import workspace_for_tests

_seq = itertools.count(1)


def make_account(network: str = "instagram", **overrides: Any) -> SocialAccount:
    n = next(_seq)
    values: dict[str, Any] = {
        "workspace": workspace_for_tests(),
        "network": network,
        "display_name": f"{network} account {n}",
    }
    values.update(overrides)
    return SocialAccount.objects.create(**values)


def make_campaign(
    *,
    networks: tuple[str, ...] = ("instagram",),
    fallback: tuple[str, ...] = ("push", "email", "sms"),
    due_in_minutes: float = -1,
    **overrides: Any,
) -> Campaign:
    n = next(_seq)
    workspace = overrides.pop("workspace", None) or workspace_for_tests()
    values: dict[str, Any] = {
        "workspace": workspace,
        "name": f"Campaign {n}",
        "status": CampaignStatus.SCHEDULED,
        "scheduled_at": timezone.now() + timedelta(minutes=due_in_minutes),
        "text": "Our winter sale starts now",
        "fallback_channels": list(fallback),
        "message": make_message(name=f"Fallback {n}", workspace=workspace),
    }
    values.update(overrides)
    campaign = Campaign.objects.create(**values)
    for network in networks:
        account = make_account(network, workspace=workspace)
        SocialPost.objects.create(
            workspace=workspace, campaign=campaign, account=account, network=network
        )
    return campaign


def network_down(network: str = "instagram") -> OutageWindow:
    return outage_declare(network=network, reason="test outage", actor="tests")
