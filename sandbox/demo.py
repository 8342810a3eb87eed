"""The demo agency `make run` seeds once: two client workspaces, each with its own audience,
segments, social accounts, campaigns and messages, one install-wide monitor, and demo people.

An agency install: "Trattoria Roma" and "Boutique Milano" are two client businesses of one agency.
Some people are customers of both, so the same email address is a contact in each workspace, with
consent of its own: the demo shows that one workspace never sees the other's. The demo admin
(ensure_demo_admin) is superuser, operator and owner of both; a marketer and a viewer work in
Trattoria Roma only. Everything points at the loopback sandbox, so the README's curl commands show
a whole outage, reroute and fail-back on one machine without touching any real network or provider.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
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
    ContactTag,
    Purpose,
    PushSubscription,
    Segment,
    Tag,
)
from continuity.models import Membership, Role, Workspace
from continuity.workspaces import (
    command_access,
    membership_set,
    operator_add,
    user_ensure,
    workspace_create,
)
from delivery.models import Message
from delivery.secrets import token_encrypt
from outages.credentials import credential_issue
from outages.models import MonitorSource, SourceKind
from sandbox.demo_push import demo_subscription_keys

DEMO_SOURCE_SLUG = "demo-alertmanager"
TIMEZONES = (
    "Europe/Rome",
    "Europe/Rome",
    "Europe/Rome",
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
)
# Each contact's language follows where they live: the Italian businesses' own customers speak
# Italian, the visitors from London and New York English, Paris French (addressed in the
# workspace's Italian, there being no French interface), Tokyo's guests English.
LOCALE_OF_ZONE = {
    "Europe/Rome": "it-IT",
    "Europe/London": "en-GB",
    "Europe/Paris": "fr-FR",
    "America/New_York": "en-US",
    "Asia/Tokyo": "en",
}
# The demo businesses are Italian: their default language and time zone, and the SMS keywords
# their customers text besides Twilio's STOP/START/HELP.
DEMO_WORKSPACE_SETTINGS = {
    "language": "it",
    "timezone": "Europe/Rome",
    "sms_stop_keywords": "ANNULLA, CANCELLA, DISISCRIVIMI",
    "sms_start_keywords": "ISCRIVIMI, RIPRENDI",
    "sms_help_keywords": "AIUTO",
}
TAGS = ("newsletter", "vip", "eu", "us", "app-user")
FIRST_NAMES = ("Giulia", "Marco", "Sofia", "Luca", "Chiara", "Ada", "Grace", "Alan", "Linus")


@dataclass(frozen=True)
class DemoWorkspace:
    """One client business of the demo agency."""

    slug: str
    name: str
    handle: str
    # The start of its contacts' email addresses and phone numbers: each workspace its own. The
    # numbers are in Italian mobile ranges, so they pass the contact form's validation and can
    # take an SMS.
    email_prefix: str
    phone_prefix: str
    # Its social accounts: network -> model fields (ids, display name); tokens per account.
    accounts: dict[str, dict[str, str]]
    # (name, networks, outage policy, minutes from now)
    campaigns: tuple[tuple[str, tuple[str, ...], str, int], ...]
    city: str
    site: str
    token_suffix: str = ""

    def account_token(self, network: str) -> str:
        return f"sandbox-{network}-token{self.token_suffix}"


DEMO_WORKSPACES = (
    DemoWorkspace(
        slug="trattoria-roma",
        name="Trattoria Roma",
        handle="trattoriaroma",
        email_prefix="guest",
        phone_prefix="+39347",
        accounts={
            "facebook": {"page_id": "1000001", "display_name": "Trattoria Roma (Facebook page)"},
            "instagram": {"ig_user_id": "1780001", "display_name": "@trattoriaroma (Instagram)"},
            "x": {"x_user_id": "4400001", "display_name": "@trattoriaroma (X)"},
        },
        campaigns=(
            ("Sunday lunch", ("facebook", "instagram", "x"), OutagePolicy.REROUTE, 3),
            ("Truffle week", ("instagram",), OutagePolicy.HOLD_THEN_REROUTE, 5),
            ("Terrace opening", ("facebook", "instagram"), OutagePolicy.HOLD, 8),
        ),
        city="Roma",
        site="https://trattoria-roma.example",
    ),
    DemoWorkspace(
        slug="boutique-milano",
        name="Boutique Milano",
        handle="boutiquemilano",
        email_prefix="client",
        phone_prefix="+39348",
        accounts={
            "facebook": {"page_id": "1000002", "display_name": "Boutique Milano (Facebook page)"},
            "instagram": {"ig_user_id": "1780002", "display_name": "@boutiquemilano (Instagram)"},
            "x": {"x_user_id": "4400002", "display_name": "@boutiquemilano (X)"},
        },
        campaigns=(
            ("Winter sale", ("facebook", "instagram", "x"), OutagePolicy.REROUTE, 4),
            ("Flash offer", ("instagram",), OutagePolicy.HOLD_THEN_REROUTE, 6),
            ("New collection", ("facebook", "instagram"), OutagePolicy.HOLD, 9),
        ),
        city="Milano",
        site="https://boutique-milano.example",
        token_suffix="-milano",  # noqa: S106 - a sandbox token name, not a secret  # nosec B106
    ),
)
DEMO_WORKSPACE_SLUGS = tuple(w.slug for w in DEMO_WORKSPACES)

# Users of the sandbox X fake (`manage.py sandbox`): each demo X account's token and user id.
DEMO_X_USERS = tuple(
    (w.account_token("x"), w.accounts["x"]["x_user_id"], w.handle) for w in DEMO_WORKSPACES
)

# One in SHARED_EVERY contacts of the second workspace is also a contact of the first (same email
# address), with consent of its own there.
SHARED_EVERY = 10

# The demo's people besides the admin: (username, role, workspace slug). They are created by
# ensure_demo_admin with the admin's password, or here without one (README, "The demo").
DEMO_ADMIN = "admin"
DEMO_PEOPLE = (
    ("marco", Role.MARKETER, "trattoria-roma"),
    ("vera", Role.VIEWER, "trattoria-roma"),
)


@dataclass(frozen=True)
class DemoInfo:
    created: bool
    contacts: int
    token_file: Path
    source_url: str
    # On a later run: a new round of the campaigns, per workspace none of whose were still due.
    rescheduled: bool = False
    workspaces: tuple[str, ...] = DEMO_WORKSPACE_SLUGS
    # Demo people created here without a password (ensure_demo_admin did not make them).
    without_password: tuple[str, ...] = field(default=())


def demo_token_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_monitor_token"


def demo_seed(*, contacts: int = 5000, seed: int = 7, admin: str = DEMO_ADMIN) -> DemoInfo:
    """Create the demo agency unless it exists; never touches data that is not the demo's.
    ``contacts`` is the total, split between the two workspaces."""
    token_file = demo_token_file()
    url = f"/hooks/monitors/{DEMO_SOURCE_SLUG}/"
    if Workspace.objects.filter(slug=DEMO_WORKSPACES[0].slug).exists():
        with transaction.atomic():
            without_password = _demo_people_ensure(admin=admin)
            rescheduled = _demo_round_ensure()
        count = Contact.objects.filter(workspace__slug__in=DEMO_WORKSPACE_SLUGS).count()
        return DemoInfo(
            False, count, token_file, url, rescheduled, without_password=without_password
        )
    rng = random.Random(seed)  # noqa: S311 - demo data, not security  # nosec B311
    secret = None
    with transaction.atomic():
        first = contacts - contacts // 2
        sizes = (first, contacts // 2)
        for demo, size in zip(DEMO_WORKSPACES, sizes, strict=True):
            workspace = workspace_create(access=command_access(), slug=demo.slug, name=demo.name)
            Workspace.objects.filter(pk=workspace.pk).update(**DEMO_WORKSPACE_SETTINGS)
            workspace.refresh_from_db()
            _seed_contacts(rng, workspace, demo, size, shared_with=DEMO_WORKSPACES[0])
            accounts = _seed_accounts(workspace, demo)
            _seed_campaigns(workspace, demo, accounts)
        without_password = _demo_people_ensure(admin=admin)
        if not MonitorSource.objects.filter(slug=DEMO_SOURCE_SLUG).exists():
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
    if secret is not None:
        token_file.write_text(secret)
        token_file.chmod(0o600)
    return DemoInfo(True, contacts, token_file, url, without_password=without_password)


def _demo_people_ensure(*, admin: str) -> tuple[str, ...]:
    """The admin (when it exists) becomes operator and owner of both workspaces; the demo people
    get their role. Memberships someone changed since are left alone."""
    workspaces = {w.slug: w for w in Workspace.objects.filter(slug__in=DEMO_WORKSPACE_SLUGS)}
    access = command_access()
    user_model = get_user_model()
    admin_user = user_model.objects.filter(**{user_model.USERNAME_FIELD: admin}).first()
    wanted: list[tuple[Any, str, Workspace]] = []  # (user, role, workspace)
    if admin_user is not None:
        operator_add(access=access, user=admin_user)
        wanted += [(admin_user, Role.OWNER, ws) for ws in workspaces.values()]
    without_password = []
    for username, person_role, slug in DEMO_PEOPLE:
        person, created = user_ensure(username=username)
        if created:
            without_password.append(username)
        wanted.append((person, person_role, workspaces[slug]))
    for user, role, workspace in wanted:
        if not Membership.objects.filter(user=user, workspace=workspace).exists():
            membership_set(
                access=command_access(workspace=workspace),
                workspace=workspace,
                user=user,
                role=role,
            )
    return tuple(without_password)


def _seed_contacts(
    rng: random.Random,
    workspace: Workspace,
    demo: DemoWorkspace,
    count: int,
    *,
    shared_with: DemoWorkspace,
) -> None:
    now = timezone.now()

    def email(n: int) -> str:
        # Every SHARED_EVERY-th customer of a later workspace is a guest of the first one too.
        if demo is not shared_with and n % SHARED_EVERY == 0:
            return f"{shared_with.email_prefix}{n}@example.com"
        return f"{demo.email_prefix}{n}@example.com"

    def contact(n: int) -> Contact:
        # The same draws in the same order as before languages: a seed gives the same people.
        address = email(n) if rng.random() < 0.9 or n % SHARED_EVERY == 0 else None
        phone = f"{demo.phone_prefix}{n:07d}" if rng.random() < 0.6 else None
        first_name = rng.choice(FIRST_NAMES)
        zone = rng.choice(TIMEZONES)
        return Contact(
            workspace=workspace,
            external_id=f"{demo.slug}-{n}",
            email=address,
            phone=phone,
            first_name=first_name,
            last_name=f"Demo{n}",
            timezone=zone,
            locale=LOCALE_OF_ZONE.get(zone, ""),
            attributes={"city": rng.choice((demo.city, "London", "Paris", "New York"))},
        )

    rows = [contact(n) for n in range(1, count + 1)]
    created = Contact.objects.bulk_create(rows, batch_size=1000)
    tags = {name: Tag.objects.get_or_create(workspace=workspace, name=name)[0] for name in TAGS}
    ContactTag.objects.bulk_create(
        [
            ContactTag(workspace=workspace, contact=c, tag=tags[name])
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
                            workspace=workspace,
                            contact=c,
                            endpoint=f"{settings.SANDBOX_PUSH_BASE_URL}/push/demo-{c.pk}",
                            p256dh=p256dh,
                            auth=auth,
                            user_agent="demo",
                        )
                    )
    # Consent rows take their workspace from their contact.
    consents_apply_bulk(changes=changes)
    PushSubscription.objects.bulk_create(pushes, batch_size=1000)
    Segment.objects.get_or_create(workspace=workspace, name="Everyone (demo)")
    Segment.objects.get_or_create(
        workspace=workspace,
        name="VIP (demo)",
        defaults={"tags_any": ["vip"], "description": "Tagged vip."},
    )


def _demo_round_ensure() -> bool:
    """The README's walk-through needs campaigns falling due in the next minutes: a `make run`
    days after the first finds the seeded ones long published, so it schedules the same ones
    again, on each workspace's own accounts. Campaigns someone scheduled by hand count as
    upcoming (in their workspace)."""
    rescheduled = False
    for demo in DEMO_WORKSPACES:
        workspace = Workspace.objects.filter(slug=demo.slug).first()
        if workspace is None:
            continue
        upcoming = Campaign.objects.for_workspace(workspace).filter(
            status=CampaignStatus.SCHEDULED, scheduled_at__gt=timezone.now()
        )
        accounts = {
            account.network: account
            for account in SocialAccount.objects.for_workspace(workspace).filter(
                display_name__in=[fields["display_name"] for fields in demo.accounts.values()]
            )
        }
        if upcoming.exists() or set(accounts) != set(demo.accounts):
            continue
        _seed_campaigns(workspace, demo, accounts)
        rescheduled = True
    return rescheduled


def _seed_accounts(workspace: Workspace, demo: DemoWorkspace) -> dict[str, SocialAccount]:
    expires = timezone.now() + timedelta(days=60)
    return {
        network: SocialAccount.objects.create(
            workspace=workspace,
            network=network,
            access_token_encrypted=token_encrypt(plaintext=demo.account_token(network)),
            token_expires_at=expires,
            **fields,
        )
        for network, fields in demo.accounts.items()
    }


def _seed_campaigns(
    workspace: Workspace, demo: DemoWorkspace, accounts: dict[str, SocialAccount]
) -> None:
    now = timezone.now()
    offers = f"{demo.site}/offers"
    # The audience a marketer would pick: without it (and the accounts below) the campaign page
    # lists what is missing, in red, on campaigns that already went out.
    everyone, _ = Segment.objects.get_or_create(workspace=workspace, name="Everyone (demo)")
    for name, networks, policy, minutes in demo.campaigns:
        message = Message.objects.create(
            workspace=workspace,
            name=f"{name}: fallback",
            email_subject=f"{name}, {{{{ first_name }}}}",
            email_html=f"<p>Hi {{{{ first_name }}}}, {demo.name}: {name.lower()} is on now.</p>",
            email_text=f"Hi {{{{ first_name }}}}, {demo.name}: {name.lower()} is on now.",
            sms_text=f"{demo.name}: {name}. Reply STOP to opt out.",
            push_title=f"{demo.name}: {name}",
            push_body="Tap to see what is on today.",
            push_url=offers,
        )
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=name,
            status=CampaignStatus.SCHEDULED,
            scheduled_at=now + timedelta(minutes=minutes),
            text=f"{name} starts now! {offers}",
            link=offers,
            image_url=f"{demo.site}/static/{demo.handle}.jpg",
            fallback_channels=["push", "email", "sms"],
            message=message,
            outage_policy=policy,
            hold_then_reroute_minutes=2,
            max_hold_minutes=30,
            sms_budget_segments=1000,
            segment=everyone,
        )
        campaign.accounts.set([accounts[network] for network in networks])
        SocialPost.objects.bulk_create(
            [
                SocialPost(
                    workspace=workspace,
                    campaign=campaign,
                    account=accounts[network],
                    network=network,
                )
                for network in networks
            ]
        )
