"""Factories with keyword defaults for the campaigns tests."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.utils import timezone

from campaigns.accounts import social_account_token_set
from campaigns.models import Campaign, SocialAccount
from contacts.models import Segment
from delivery.models import Message
from tests.workspaces import workspace_for_tests

_seq = itertools.count(1)

IMAGE = "https://cdn.example.com/autumn.jpg"


def make_account(*, network: str = "facebook", token: str = "", **overrides: Any) -> SocialAccount:
    n = next(_seq)
    ids = {
        "facebook": {"page_id": f"page{n}"},
        "instagram": {"ig_user_id": f"ig{n}"},
        "x": {"x_user_id": f"x{n}"},
        "whatsapp": {"phone_number_id": f"wa{n}"},
    }[network]
    values: dict[str, Any] = {
        "workspace": workspace_for_tests(),
        "network": network,
        "display_name": f"{network} {n}",
        **ids,
    }
    values.update(overrides)
    account = SocialAccount.objects.create(**values)
    social_account_token_set(account=account, token=token or f"token-{network}-{n}")
    return account


def make_message(**overrides: Any) -> Message:
    values: dict[str, Any] = {
        "workspace": workspace_for_tests(),
        "name": f"fallback {next(_seq)}",
        "email_subject": "Autumn sale, {{ first_name }}",
        "email_text": "Hello {{ first_name }}, the sale is on.",
        "email_html": "<p>Hello {{ first_name }}, the sale is on.</p>",
        "sms_text": "Hi {{ first_name }}: autumn sale today.",
        "push_title": "Autumn sale",
        "push_body": "Hello {{ first_name }}",
    }
    values.update(overrides)
    return Message.objects.create(**values)


def make_segment(**overrides: Any) -> Segment:
    values: dict[str, Any] = {"workspace": workspace_for_tests(), "name": f"segment {next(_seq)}"}
    values.update(overrides)
    return Segment.objects.create(**values)


def make_campaign(
    *, accounts: list[SocialAccount] | None = None, due_in_s: float | None = 60, **overrides: Any
) -> Campaign:
    n = next(_seq)
    workspace = overrides.pop("workspace", None) or workspace_for_tests()
    values: dict[str, Any] = {
        "workspace": workspace,
        "name": f"campaign {n}",
        "text": f"Autumn sale starts now #{n}",
        "link": "https://shop.example.com/autumn",
        "image_url": IMAGE,
        "scheduled_at": timezone.now() + timedelta(seconds=due_in_s)
        if due_in_s is not None
        else None,
        "fallback_channels": ["push", "email", "sms"],
    }
    if "segment" not in overrides:
        values["segment"] = make_segment(workspace=workspace)
    if "message" not in overrides:
        values["message"] = make_message(workspace=workspace)
    values.update(overrides)
    campaign = Campaign.objects.create(**values)
    if accounts:
        campaign.accounts.set(accounts)
    return campaign
