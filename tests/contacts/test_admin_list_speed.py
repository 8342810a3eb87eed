"""The contacts list never counts the whole workspace: the count is exact up to a cap (a bounded
scan), and past it the planner's estimate is shown (contacts.admin_paginator)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from contacts import admin_paginator
from contacts.admin_paginator import EstimatedCountPaginator
from contacts.models import Contact
from tests.contacts.factories import make_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


def _unbounded_counts(queries: list[dict[str, Any]]) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if "COUNT(" in q["sql"] and "contacts_contact" in q["sql"] and "LIMIT" not in q["sql"]
    ]


def test_the_contacts_list_counts_no_more_than_the_cap(admin_client: Client) -> None:
    for _ in range(3):
        make_contact()
    with CaptureQueriesContext(connection) as captured:
        page = admin_client.get("/admin/contacts/contact/")
    assert page.status_code == 200
    assert _unbounded_counts(captured.captured_queries) == []
    assert page.context["cl"].result_count == 3  # under the cap: exact


def test_a_search_with_few_matches_is_counted_exactly(admin_client: Client) -> None:
    make_contact(email="needle@example.com")
    make_contact()
    page = admin_client.get("/admin/contacts/contact/", {"q": "needle"})
    assert page.context["cl"].result_count == 1


def test_past_the_cap_the_planners_estimate_is_shown_not_a_full_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admin_paginator, "EXACT_COUNT_CAP", 2)
    for _ in range(5):
        make_contact()
    paginator = EstimatedCountPaginator(
        Contact.objects.for_workspace(workspace_for_tests()).order_by("-pk"), 50
    )
    with CaptureQueriesContext(connection) as captured:
        count = paginator.count
    assert _unbounded_counts(captured.captured_queries) == []
    assert any("EXPLAIN" in q["sql"] for q in captured.captured_queries)
    # The estimate of a fresh, never analysed table is the planner's guess, never below the cap.
    assert count >= 2
