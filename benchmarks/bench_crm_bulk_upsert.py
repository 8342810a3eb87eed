"""crm.bulk_upsert_10k_s: one POST /api/v1/contacts/bulk/ of 10,000 contacts (with phones,
tags and a consent each), through the whole Django + DRF stack with a workspace's API key (an
owner's), into its own PostgreSQL database. Also reports the same request again as updates."""

from __future__ import annotations

import json
import os
import time

from benchmarks._common import emit, setup_django, sized
from benchmarks.bench_crm_import import bench_database


def payload(n: int, *, suffix: str = "") -> bytes:
    rows = [
        {
            "external_id": f"B-{i}",
            "email": f"bulk{i}@example.com",
            "phone": f"+3361{i:07d}" if i % 2 else None,
            "first_name": f"Bulk{suffix}",
            "timezone": "Europe/Berlin",
            "tags": ["bulk", "vip"] if i % 10 == 0 else ["bulk"],
            "attributes": {"plan": "gold" if i % 3 else "free", "n": i},
            "consents": [
                {
                    "channel": "email",
                    "purpose": "marketing",
                    "state": "granted",
                    "source": "form",
                    "ip": "192.0.2.1",
                    "consent_text_version": "v1",
                }
            ],
        }
        for i in range(n)
    ]
    return json.dumps({"contacts": rows}).encode()


def main() -> None:
    n = sized(full=10_000, small=500)
    with bench_database("continuity_bench_crm_bulk") as url:
        os.environ["DATABASE_URL"] = url
        setup_django()
        from django.contrib.auth import get_user_model
        from django.test import Client

        from contacts.models import Contact
        from continuity.models import ApiKey, Membership, Role, Workspace

        workspace = Workspace.objects.create(slug="bench-bulk", name="Bulk benchmark")
        user = get_user_model().objects.create_user(username="bench")
        Membership.objects.create(user=user, workspace=workspace, role=Role.OWNER)
        _, key = ApiKey.objects.create_key(name="bench", user=user, workspace=workspace)
        client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}")
        timings = []
        for suffix in ("", "-changed"):
            body = payload(n, suffix=suffix)
            started = time.perf_counter()
            response = client.post("/api/v1/contacts/bulk/", body, content_type="application/json")
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content[:500]
            summary = response.json()["summary"]
            assert summary["errors"] == 0, summary
        assert summary["updated"] == n, summary
        assert Contact.objects.for_workspace(workspace).count() == n
    emit(
        "crm.bulk_upsert_10k_s",
        timings[0],
        "s",
        target="< 2 s for 10,000 contacts in one request",
        contacts=n,
        update_same_rows_s=round(timings[1], 3),
    )


if __name__ == "__main__":
    main()
