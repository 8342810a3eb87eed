"""ui.page_p95_ms: server time of the marketer's key admin pages, p95 over N requests each.

Measured through Django's test client (request in, response rendered: URL routing, middleware,
session, permission checks, queries, templates; no network, no browser) as a marketer of the
workspace, in a database of its own holding 1,000,000 contacts and 100,000 deliveries (20,000
and 5,000 at BENCH_SCALE=small). One JSON line per page, then one for the slowest page.

PAGES is the list to extend: (name, a function of the seeded world returning the URL).
BENCH_UI_PAGES=dashboard,report measures only the pages named (default: all of them).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from benchmarks._common import emit, setup_django, sized
from benchmarks.bench_crm_import import bench_database
from benchmarks.bench_crm_segment_count import POPULATE

TARGET_MS = 300.0
CAMPAIGNS = 40  # scheduled over the next day, half of them on Instagram
REROUTED = 10  # of those, rerouted by the open Instagram outage, sharing the deliveries

DELIVERIES = """
INSERT INTO delivery_delivery (workspace_id, message_id, contact_id, channel, status, attempt,
    provider, provider_message_id, error_code, error_text, cost_units, not_before, created_at,
    updated_at, queued_at, sending_at, sent_at, delivered_at, opened_at, clicked_at, failed_at)
SELECT c.workspace_id, (%(messages)s)[1 + (n %% %(m)s)], c.id,
       (ARRAY['email', 'sms', 'push'])[1 + (n %% 3)],
       (ARRAY['delivered', 'sent', 'opened', 'clicked', 'failed', 'queued', 'bounced',
              'cancelled'])[1 + (n %% 8)],
       1, 'bench', '', '', '', CASE WHEN n %% 3 = 1 THEN 1 ELSE 0 END, NULL,
       %(opened)s, now(), %(opened)s, %(opened)s,
       %(opened)s + (n %% 3600) * interval '1 second',
       %(opened)s + (n %% 3600) * interval '1 second',
       CASE WHEN n %% 8 IN (2, 3) THEN now() END, CASE WHEN n %% 8 = 3 THEN now() END, NULL
FROM (SELECT id, workspace_id, row_number() OVER (ORDER BY id) AS n FROM contacts_contact
      WHERE workspace_id = %(ws)s ORDER BY id LIMIT %(d)s) c
"""


@dataclass
class World:
    window_id: int
    campaign_id: int


# The pages measured, in order. admincomposer adds the campaign list and composer and the
# contacts list here: (name, url of the seeded world).
PAGES: list[tuple[str, Callable[[World], str]]] = [
    ("dashboard", lambda w: "/admin/campaigns/reroute/dashboard/"),
    ("drill_form", lambda w: "/admin/campaigns/reroute/drill/"),
    ("report", lambda w: f"/admin/campaigns/reroute/report/{w.window_id}/"),
    ("engagement", lambda w: f"/admin/campaigns/reroute/engagement/{w.campaign_id}/"),
    # The drill plans every affected campaign's whole audience (one campaign of 1,000,000
    # contacts here) in a Celery task (campaigns.drill): the page asks for the run and answers
    # "running" (or the finished report) without planning anything itself. No worker runs
    # here: the page's own time is what is measured.
    ("drill_run", lambda w: "/admin/campaigns/reroute/drill/?network=x"),
]


def _seed(contacts: int, deliveries: int) -> tuple[World, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import (
        Campaign,
        CampaignStatus,
        PostStatus,
        Reroute,
        RerouteStatus,
        SocialAccount,
        SocialPost,
    )
    from contacts.models import Segment, consent_bit
    from continuity.models import Membership, Role, Workspace
    from delivery.models import Message
    from outages.models import OutageWindow

    workspace = Workspace.objects.create(slug="bench-ui", name="UI benchmark")
    with connection.cursor() as cursor:
        for statement in POPULATE:
            cursor.execute(
                statement,
                {
                    "ws": workspace.pk,
                    "n": contacts,
                    "email_bit": consent_bit("email", "marketing"),
                    "sms_bit": consent_bit("sms", "marketing"),
                },
            )
    now = timezone.now()
    segment = Segment.objects.create(workspace=workspace, name="Everyone")
    accounts = {
        network: SocialAccount.objects.create(
            workspace=workspace, network=network, display_name=f"Bench {network}"
        )
        for network in ("instagram", "facebook", "x")
    }
    window = OutageWindow.objects.create(
        network="instagram", opened_at=now - timedelta(hours=1), reason="bench"
    )
    OutageWindow.objects.create(
        network="facebook",
        state="resolved",
        opened_at=now - timedelta(days=1),
        closed_at=now - timedelta(hours=20),
    )
    messages = []
    campaigns = []
    for i in range(CAMPAIGNS):
        network = ("instagram", "facebook", "x")[i % 3] if i else "x"
        message = Message.objects.create(
            workspace=workspace,
            name=f"Fallback {i}",
            email_subject="Hello {{ first_name }}",
            email_text="Our sale is on.",
            sms_text="Our sale is on. STOP to opt out",
        )
        rerouted = i < REROUTED
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=f"Campaign {i}",
            status=CampaignStatus.REROUTED if rerouted else CampaignStatus.SCHEDULED,
            scheduled_at=now - timedelta(minutes=30) if rerouted else now + timedelta(hours=i % 24),
            fallback_channels=["email", "sms"],
            message=message,
            segment=segment,
            outage_policy="reroute" if i % 4 else "hold_then_reroute",
        )
        campaign.accounts.set([accounts["instagram" if rerouted else network]])
        SocialPost.objects.create(
            workspace=workspace,
            campaign=campaign,
            account=accounts["instagram" if rerouted else network],
            network="instagram" if rerouted else network,
            status=PostStatus.REROUTED if rerouted else PostStatus.PENDING,
        )
        if rerouted:
            Reroute.objects.create(
                workspace=workspace,
                campaign=campaign,
                network="instagram",
                window=window,
                policy="reroute",
                status=RerouteStatus.SENDING,
                signal_at=window.opened_at,
                exclusions={"no_consent": 1000, "delayed_quiet_hours": 20},
            )
            messages.append(message.pk)
        campaigns.append(campaign)
    # Only the x campaign (the first) is scheduled on x: the drill of x plans one audience.
    Campaign.objects.filter(pk=campaigns[0].pk).update(
        status=CampaignStatus.SCHEDULED, scheduled_at=now + timedelta(hours=2)
    )
    Reroute.objects.filter(campaign=campaigns[0]).delete()
    SocialPost.objects.filter(campaign=campaigns[0]).update(
        network="x", account=accounts["x"], status=PostStatus.PENDING
    )
    messages = [m for m in messages if m != campaigns[0].message_id]
    Reroute.objects.filter(campaign__in=campaigns[1:REROUTED]).update(created_at=window.opened_at)
    with connection.cursor() as cursor:
        cursor.execute(
            DELIVERIES,
            {
                "ws": workspace.pk,
                "messages": messages,
                "m": len(messages),
                "d": deliveries,
                "opened": window.opened_at + timedelta(minutes=1),
            },
        )
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    user = get_user_model().objects.create_user(username="bench-marketer", is_staff=True)
    Membership.objects.create(user=user, workspace=workspace, role=Role.MARKETER)
    return World(window.pk, campaigns[1].pk), (user, workspace)


def _client(user: Any, workspace: Any) -> Any:
    from django.test import Client

    from continuity.admin_access import SESSION_KEY

    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = workspace.pk
    session.save()
    return client


def main() -> None:
    contacts = sized(full=1_000_000, small=20_000)
    deliveries = sized(full=100_000, small=5_000)
    requests = sized(full=40, small=10)
    with bench_database("continuity_bench_ui_pages") as url:
        os.environ["DATABASE_URL"] = url
        setup_django()
        from django.conf import settings

        # The test client's host, as in the tests; everything else is the install's own.
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        started = time.perf_counter()
        world, (user, workspace) = _seed(contacts, deliveries)
        load_s = time.perf_counter() - started
        client = _client(user, workspace)
        worst: tuple[str, float] = ("", 0.0)
        chosen = [n for n in os.environ.get("BENCH_UI_PAGES", "").split(",") if n]
        pages = [(n, u) for n, u in PAGES if not chosen or n in chosen]
        for name, url_of in pages:
            page = url_of(world)
            if (first := client.get(page)).status_code != 200:
                raise SystemExit(f"{name}: {page} answered {first.status_code}")
            timings = []
            for _ in range(requests):
                t0 = time.perf_counter()
                response = client.get(page)
                timings.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{name}: {page} answered {response.status_code}")
            p95 = statistics.quantiles(timings, n=20)[-1] if len(timings) >= 2 else timings[0]
            emit(
                f"ui.page_p95_ms.{name}",
                p95,
                "ms",
                target=f"< {TARGET_MS:.0f} ms",
                url=page,
                requests=len(timings),
                median_ms=round(statistics.median(timings), 1),
                contacts=contacts,
                deliveries=deliveries,
            )
            if p95 > worst[1]:
                worst = (name, p95)
        emit(
            "ui.page_p95_ms",
            worst[1],
            "ms",
            target=f"< {TARGET_MS:.0f} ms",
            slowest=worst[0],
            pages=[name for name, _ in pages],
            contacts=contacts,
            deliveries=deliveries,
            load_s=round(load_s, 1),
        )


if __name__ == "__main__":
    main()
