"""The demo company `make run` seeds once: an audience, social accounts, campaigns and a monitor.

Everything points at the loopback sandbox, so the README's curl commands show a whole outage,
reroute and fail-back on one machine without touching any real network or provider.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignStatus,
    OutagePolicy,
    SocialAccount,
    SocialPost,
)
from contacts.consent import ConsentChange, Evidence, consents_apply_bulk
from contacts.models import (
    Channel,
    ConsentSource,
    ConsentState,
    Contact,
    Purpose,
    PushSubscription,
    Segment,
)
from delivery.models import Message
from delivery.secrets import token_encrypt
from outages.credentials import credential_issue
from outages.models import MonitorSource, SourceKind
from sandbox.demo_push import demo_subscription_keys

DEMO_SOURCE_SLUG = "demo-alertmanager"
TIMEZONES = (
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
TAGS = ("newsletter", "vip", "eu", "us", "app-user")
DEMO_ACCOUNTS = {
    "facebook": {"page_id": "1000001", "display_name": "Demo Shop (Facebook page)"},
    "instagram": {"ig_user_id": "1780001", "display_name": "@demoshop (Instagram)"},
    "x": {"x_user_id": "4400001", "display_name": "@demoshop (X)"},
}


@dataclass(frozen=True)
class DemoInfo:
    created: bool
    contacts: int
    token_file: Path
    source_url: str
    # On a later run: a new round of the three campaigns, when none of the demo's was still due.
    rescheduled: bool = False


def demo_token_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_monitor_token"


def demo_seed(*, contacts: int = 5000, seed: int = 7) -> DemoInfo:
    """Create the demo company unless it exists; never touches data that is not the demo's."""
    token_file = demo_token_file()
    url = f"/hooks/monitors/{DEMO_SOURCE_SLUG}/"
    if MonitorSource.objects.filter(slug=DEMO_SOURCE_SLUG).exists():
        return DemoInfo(False, Contact.objects.count(), token_file, url, _demo_round_ensure())
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    with transaction.atomic():
        _seed_contacts(rng, contacts)
        accounts = _seed_accounts()
        _seed_campaigns(accounts)
        secret = secrets.token_urlsafe(24)
        source = MonitorSource.objects.create(
            name="Demo Alertmanager",
            slug=DEMO_SOURCE_SLUG,
            kind=SourceKind.ALERTMANAGER,
            mapping_rules=[
                {"match": "labels.service", "equals": name, "network": name}
                for name in ("facebook", "instagram", "whatsapp", "x")
            ],
        )
        credential_issue(source=source, secret=secret)
    token_file.write_text(secret)
    token_file.chmod(0o600)
    return DemoInfo(True, contacts, token_file, url)


def _seed_contacts(rng: random.Random, count: int) -> None:
    now = timezone.now()
    rows = [
        Contact(
            external_id=f"demo-{n}",
            email=f"demo{n}@example.com" if rng.random() < 0.9 else None,
            phone=f"+1555{n:07d}" if rng.random() < 0.6 else None,
            first_name=rng.choice(("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Linus")),
            last_name=f"Demo{n}",
            timezone=rng.choice(TIMEZONES),
            locale="en",
            attributes={"city": rng.choice(("London", "Paris", "New York", "Tokyo"))},
        )
        for n in range(1, count + 1)
    ]
    created = Contact.objects.bulk_create(rows, batch_size=1000)
    from contacts.models import ContactTag, Tag

    tags = {name: Tag.objects.get_or_create(name=name)[0] for name in TAGS}
    ContactTag.objects.bulk_create(
        [
            ContactTag(contact=c, tag=tags[name])
            for c in created
            for name in rng.sample(TAGS, rng.randint(0, 2))
        ],
        batch_size=2000,
    )
    evidence = Evidence(
        source=ConsentSource.FORM,
        occurred_at=now,
        consent_text_version="demo-v1",
        recorded_by="demo seed",
    )
    changes: list[ConsentChange] = []
    pushes: list[PushSubscription] = []
    for c in created:
        for channel, share in ((Channel.EMAIL, 0.75), (Channel.SMS, 0.4), (Channel.PUSH, 0.3)):
            if rng.random() < share:
                state = ConsentState.GRANTED if rng.random() < 0.9 else ConsentState.REVOKED
                changes.append(
                    ConsentChange(c.pk, channel, Purpose.MARKETING, state, evidence=evidence)
                )
                if channel == Channel.PUSH:
                    # Keys derived from the id, which the sandbox push service re-derives, so
                    # the demo's pushes decrypt there even after a restart.
                    p256dh, auth = demo_subscription_keys(f"demo-{c.pk}")
                    pushes.append(
                        PushSubscription(
                            contact=c,
                            endpoint=f"{settings.SANDBOX_PUSH_BASE_URL}/push/demo-{c.pk}",
                            p256dh=p256dh,
                            auth=auth,
                            user_agent="demo",
                        )
                    )
    consents_apply_bulk(changes=changes)
    PushSubscription.objects.bulk_create(pushes, batch_size=1000)
    Segment.objects.get_or_create(name="Everyone (demo)")


def _demo_round_ensure() -> bool:
    """The README's walk-through needs campaigns falling due in the next minutes: a `make run`
    days after the first finds the seeded ones long published, so it schedules the same three
    again, on the demo's own accounts. Campaigns someone scheduled by hand count as upcoming."""
    upcoming = Campaign.objects.filter(
        status=CampaignStatus.SCHEDULED, scheduled_at__gt=timezone.now()
    )
    accounts = {
        account.network: account
        for account in SocialAccount.objects.filter(
            display_name__in=[fields["display_name"] for fields in DEMO_ACCOUNTS.values()]
        )
    }
    if upcoming.exists() or set(accounts) != set(DEMO_ACCOUNTS):
        return False
    with transaction.atomic():
        _seed_campaigns(accounts)
    return True


def _seed_accounts() -> dict[str, SocialAccount]:
    expires = timezone.now() + timedelta(days=60)
    return {
        network: SocialAccount.objects.create(
            network=network,
            access_token_encrypted=token_encrypt(plaintext=f"sandbox-{network}-token"),
            token_expires_at=expires,
            **fields,
        )
        for network, fields in DEMO_ACCOUNTS.items()
    }


def _seed_campaigns(accounts: dict[str, SocialAccount]) -> None:
    now = timezone.now()
    plans = [
        ("Winter sale", ("facebook", "instagram", "x"), OutagePolicy.REROUTE, 3),
        ("Flash offer", ("instagram",), OutagePolicy.HOLD_THEN_REROUTE, 5),
        ("New store opening", ("facebook", "instagram"), OutagePolicy.HOLD, 8),
    ]
    for name, networks, policy, minutes in plans:
        message = Message.objects.create(
            name=f"{name}: fallback",
            email_subject=f"{name}, {{{{ first_name }}}}",
            email_html=f"<p>Hi {{{{ first_name }}}}, our {name.lower()} is on now.</p>",
            email_text=f"Hi {{{{ first_name }}}}, our {name.lower()} is on now.",
            sms_text=f"{name}: 20% off today. Reply STOP to opt out.",
            push_title=name,
            push_body="Tap to see what is on today.",
            push_url="https://shop.example/offers",
        )
        campaign = Campaign.objects.create(
            name=name,
            status=CampaignStatus.SCHEDULED,
            scheduled_at=now + timedelta(minutes=minutes),
            text=f"{name} starts now! https://shop.example/offers",
            link="https://shop.example/offers",
            image_url="https://shop.example/static/sale.jpg",
            fallback_channels=["push", "email", "sms"],
            message=message,
            outage_policy=policy,
            hold_then_reroute_minutes=2,
            max_hold_minutes=30,
            sms_budget_segments=1000,
        )
        SocialPost.objects.bulk_create(
            [
                SocialPost(campaign=campaign, account=accounts[network], network=network)
                for network in networks
            ]
        )
