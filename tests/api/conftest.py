"""A workspace with realistic data for the API-wide tests, and a WSGI app that keeps the test's
database connection across requests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from campaigns.models import CampaignStatus, OutagePolicy, Reroute
from contacts.upsert import contacts_upsert_rows
from continuity.models import Role, Workspace
from outages.windows import outage_declare, outage_resolve
from tests.campaigns.factories import make_account, make_campaign, make_segment
from tests.workspaces import make_api_key, make_member, make_workspace

# An id no row has: path parameters point at it now and then, so "not found" is tried too.
MISSING_ID = 2_000_000_000


@dataclass
class ApiWorld:
    """Who calls and which rows exist, by the kind of object a path names."""

    workspace: Workspace
    key: str
    ids: dict[str, list[int]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def ids_for(self, path: str) -> list[int]:
        """The ids a path's parameter may name: this world's rows of its kind, and one that
        names nothing."""
        kind = "windows" if "/windows/" in path else path.split("/")[3]
        return [*self.ids.get(kind, []), MISSING_ID]


@pytest.fixture
def wsgi_keeps_connection() -> Iterator[None]:
    """Requests through the WSGI handler (not Django's test client) close the database
    connection when they start and end; inside a test's transaction that would close it under
    the test. Django's test client disconnects the same receiver for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_world(db: None, wsgi_keeps_connection: None) -> ApiWorld:
    """A workspace an owner (also an operator, so the install-wide outage endpoints answer too)
    works in: contacts with tags, attributes and consent, segments, campaigns in several states
    with accounts and a fallback message, an open and a closed outage window and a reroute."""
    workspace = make_workspace()
    owner = make_member(workspace=workspace, role=Role.OWNER)
    call_command("operator_add", owner.username, stdout=io.StringIO())
    consent = {"source": "form", "consent_text_version": "v1", "ip": "203.0.113.9"}
    report = contacts_upsert_rows(
        workspace=workspace,
        raws=[
            {
                "external_id": f"crm-{n}",
                "email": f"person{n}@example.com",
                "phone": f"+3934712345{n:02d}",
                "first_name": f"Ada{n}",
                "last_name": "Lovelace",
                "locale": "it",
                "timezone": "Europe/Rome",
                "tags": ["vip", "newsletter"] if n % 2 else ["newsletter"],
                "attributes": {"city": "Milano" if n % 2 else "Roma", "orders": n},
                "consents": [
                    {"channel": "email", "purpose": "marketing", "state": "granted", **consent},
                    {"channel": "sms", "purpose": "marketing", "state": "granted", **consent},
                ]
                if n % 3
                else [],
            }
            for n in range(1, 9)
        ],
        blank_means_unchanged=False,
    )
    assert report.count("created") == 8, report.errors
    segments = [
        make_segment(workspace=workspace, name="VIP", tags_any=["vip"]),
        make_segment(
            workspace=workspace,
            name="Milano buyers",
            attribute_filters=[{"key": "city", "op": "eq", "value": "Milano"}],
        ),
    ]
    account = make_account(workspace=workspace, network="instagram")
    campaigns = [
        make_campaign(workspace=workspace, segment=segments[0]),
        make_campaign(
            workspace=workspace,
            accounts=[account],
            segment=segments[1],
            status=CampaignStatus.SCHEDULED,
            scheduled_at=timezone.now() + timedelta(hours=2),
        ),
        make_campaign(workspace=workspace, status=CampaignStatus.CANCELLED),
    ]
    closed = outage_declare(network="facebook", reason="seen down", actor="tests")
    closed = outage_resolve(window=closed, reason="back", actor="tests")
    opened = outage_declare(network="instagram", reason="seen down", actor="tests")
    Reroute.objects.create(
        workspace=workspace,
        campaign=campaigns[1],
        network="instagram",
        window=opened,
        policy=OutagePolicy.REROUTE,
        planned={"email": 5, "sms": 5},
    )
    contact_ids = sorted(r.id for r in report.results if r.id is not None)
    window_ids = [opened.pk, closed.pk]
    return ApiWorld(
        workspace=workspace,
        key=make_api_key(user=owner, workspace=workspace),
        ids={
            "contacts": contact_ids,
            "segments": [s.pk for s in segments],
            "campaigns": [c.pk for c in campaigns],
            "outages": window_ids,
            "windows": window_ids,
        },
    )
