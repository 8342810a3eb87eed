"""ui.composer_page_p95_ms: server time of the marketer's key pages (campaign list, campaign
composer, contacts list, campaign calendar) with 1,000,000 contacts, p95 over repeated requests
through Django's test client (no network, no browser: the server's share of a page load).

The composer's "Audience now" panel is not part of the page: the browser fetches it afterwards
(it runs the reroute planning statements over the whole audience), so it is reported apart as
``audience_fragment_s``. Contacts and consent are loaded set-based as in
bench_crm_segment_count.py, then VACUUM ANALYZE.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import timedelta

from benchmarks._common import emit, setup_django, sized
from benchmarks.bench_crm_import import bench_database
from benchmarks.bench_crm_segment_count import POPULATE

CAMPAIGNS = 300


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    n = sized(full=1_000_000, small=20_000)
    # The small run (the suite's smoke) proves the pages render; its p95 is no figure to keep.
    requests_per_page = sized(full=20, small=5)
    with bench_database("continuity_bench_ui_composer") as url:
        os.environ["DATABASE_URL"] = url
        setup_django()
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        from campaigns.accounts import social_account_token_set
        from campaigns.models import Campaign, SocialAccount
        from contacts.models import Segment, consent_bit
        from continuity.admin_access import SESSION_KEY
        from continuity.models import Membership, Role, Workspace
        from delivery.models import Message

        settings.DEBUG = False  # no query log: production's per-request cost
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        workspace = Workspace.objects.create(slug="bench-ui", name="UI benchmark")
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for statement in POPULATE:
                cursor.execute(
                    statement,
                    {
                        "ws": workspace.pk,
                        "n": n,
                        "email_bit": consent_bit("email", "marketing"),
                        "sms_bit": consent_bit("sms", "marketing"),
                    },
                )
        connection.set_autocommit(True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        load_s = time.perf_counter() - started

        accounts = []
        for network, ids in (("instagram", {"ig_user_id": "ig1"}), ("facebook", {"page_id": "p1"})):
            account = SocialAccount.objects.create(
                workspace=workspace, network=network, display_name=f"Shop {network}", **ids
            )
            social_account_token_set(account=account, token=f"token-{network}")
            accounts.append(account)
        segment = Segment.objects.create(
            workspace=workspace,
            name="gold",
            attribute_filters=[{"key": "plan", "op": "eq", "value": "gold"}],
        )
        now = timezone.now()
        campaign = None
        for i in range(CAMPAIGNS):
            message = Message.objects.create(
                workspace=workspace,
                name=f"fallback {i}",
                email_subject="Sale, {{ first_name }}",
                email_text="Hello {{ first_name }}",
                email_html="<p>Hello {{ first_name }}</p>",
                sms_text="Hi {{ first_name }}",
                push_title="Sale",
                push_body="Hello",
            )
            campaign = Campaign.objects.create(
                workspace=workspace,
                name=f"Campaign {i}",
                scheduled_at=now + timedelta(hours=i - CAMPAIGNS // 2),
                text="Autumn sale",
                image_url="https://cdn.example.com/a.jpg",
                segment=segment,
                message=message,
                fallback_channels=["push", "email", "sms"],
            )
            campaign.accounts.set(accounts)
        assert campaign is not None

        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user(username="bench-marketer", is_staff=True)
        Membership.objects.create(workspace=workspace, user=user, role=Role.MARKETER)
        client = Client()
        client.force_login(user)
        session = client.session
        session[SESSION_KEY] = workspace.pk
        session.save()

        pages = {
            "campaign_list": "/admin/campaigns/campaign/",
            "composer": f"/admin/campaigns/campaign/{campaign.pk}/change/",
            "contacts_list": "/admin/contacts/contact/",
            "calendar": "/admin/campaigns/campaign/calendar/",
        }
        p95: dict[str, float] = {}
        for name, path in pages.items():
            timings = []
            for _ in range(requests_per_page + 1):
                t0 = time.perf_counter()
                response = client.get(path)
                timings.append(time.perf_counter() - t0)
                assert response.status_code == 200, (path, response.status_code)
            p95[name] = round(_p95(timings[1:]) * 1000, 1)
        t0 = time.perf_counter()
        audience = client.get(f"/admin/campaigns/campaign/{campaign.pk}/audience/")
        audience_s = time.perf_counter() - t0
        assert audience.status_code == 200
    emit(
        "ui.composer_page_p95_ms",
        max(p95.values()),
        "ms",
        target="< 300 ms server time per key page with 1,000,000 contacts",
        contacts=n,
        campaigns=CAMPAIGNS,
        requests_per_page=requests_per_page,
        per_page_p95_ms=p95,
        audience_fragment_s=round(audience_s, 2),
        median_page_p95_ms=statistics.median(p95.values()),
        load_s=round(load_s, 1),
    )


if __name__ == "__main__":
    main()
