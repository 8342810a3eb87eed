"""The segment editor's rule rows: tags as names, attribute, consent and date rules in plain
words, saved as the definition contacts.segments evaluates and counted live, set-based."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from contacts.consent import Evidence, consent_grant
from contacts.models import Channel, Contact, Purpose, Segment
from contacts.segments import segment_audience
from contacts.upsert import contacts_upsert_rows
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


def _rows(**fields: str) -> dict[str, str]:
    return {"name": "Lyon VIPs", "description": "", **fields}


def test_rule_rows_save_as_the_stored_definition_and_show_back_as_rows(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        "/admin/contacts/segment/add/",
        _rows(
            tags_any="vip, newsletter, vip",
            tags_none="churned",
            **{
                "rule-0-kind": "attribute",
                "rule-0-key": "city",
                "rule-0-op": "in",
                "rule-0-value": "Lyon, Paris",
                "rule-1-kind": "attribute",
                "rule-1-key": "orders",
                "rule-1-op": "gte",
                "rule-1-value": "3",
                "rule-2-kind": "consent",
                "rule-2-channel": "email",
                "rule-3-kind": "created",
                "rule-3-created_op": "gte",
                "rule-3-value": "2026-01-31",
                "rule-4-kind": "attribute",
                "rule-4-key": "",
                "rule-4-value": "",
            },
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    segment = Segment.objects.get(name="Lyon VIPs")
    assert segment.tags_any == ["vip", "newsletter"]
    assert segment.tags_none == ["churned"]
    assert segment.attribute_filters == [
        {"key": "city", "op": "in", "value": ["Lyon", "Paris"]},
        {"key": "orders", "op": "gte", "value": 3},
        {"consent": "email"},
        {"created": "gte", "value": "2026-01-31"},
    ]
    page = admin_client.get(f"/admin/contacts/segment/{segment.pk}/change/").content.decode()
    assert 'value="vip, newsletter"' in page
    assert 'value="Lyon, Paris"' in page
    form = page.split('id="segment_form"')[1]
    assert form.count("<textarea") == 1 and 'name="description"' in form  # the only one
    assert "[{" not in form and "&quot;op&quot;" not in form  # no JSON shown to type into


def test_consent_and_date_rules_select_the_right_contacts() -> None:
    workspace = workspace_for_tests()
    contacts_upsert_rows(
        workspace=workspace,
        raws=[
            {"email": "old@example.com", "attributes": {"city": "Lyon"}},
            {"email": "new@example.com", "attributes": {"city": "Lyon"}},
        ],
        blank_means_unchanged=False,
    )
    old = Contact.objects.get(email="old@example.com")
    Contact.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    new = Contact.objects.get(email="new@example.com")
    consent_grant(
        contact=new,
        channel=Channel.EMAIL,
        purpose=Purpose.MARKETING,
        evidence=Evidence(source="admin", source_detail="test"),
    )
    since = (timezone.now() - timedelta(days=30)).date().isoformat()

    def matching(filters: list[dict[str, object]]) -> set[str]:
        segment = Segment(workspace=workspace, name="x", attribute_filters=filters)
        return {e or "" for e in segment_audience(segment=segment).values_list("email", flat=True)}

    assert matching([{"consent": "email"}]) == {"new@example.com"}
    assert matching([{"created": "gte", "value": since}]) == {"new@example.com"}
    assert matching([{"created": "lt", "value": since}]) == {"old@example.com"}
    assert matching([{"consent": "sms"}]) == set()
    assert matching([{"consent": "fax"}]) == set()  # invalid: nobody, never an error


def test_the_live_count_reads_the_rows_as_posted(admin_client: Client) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "a@example.com", "attributes": {"city": "Lyon"}, "tags": ["vip"]},
            {"email": "b@example.com", "attributes": {"city": "Nice"}, "tags": ["vip"]},
        ],
        blank_means_unchanged=False,
    )
    counted = admin_client.post(
        "/admin/contacts/segment/count/",
        {
            "tags_any": "vip",
            "rule-0-kind": "attribute",
            "rule-0-key": "city",
            "rule-0-op": "eq",
            "rule-0-value": "Lyon",
        },
    )
    assert counted.status_code == 200
    assert counted.json()["all"] == 1
    bad = admin_client.post(
        "/admin/contacts/segment/count/",
        {"rule-0-kind": "attribute", "rule-0-key": "", "rule-0-value": "Lyon"},
    )
    assert bad.status_code == 400 and "Rule 1" in bad.json()["detail"]
