"""The admin's times in the session's workspace's time zone, its dates and numbers in the
reader's language (#17)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from contacts.models import Contact
from continuity.models import Role
from tests.contacts.factories import make_contact
from tests.workspaces import make_member, make_workspace

pytestmark = pytest.mark.django_db

LATE = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # 00:30 on the 25th in Rome


def _owner_client(**workspace: str) -> Client:
    place = make_workspace(**workspace)
    contact = make_contact(workspace=place, email="maria@example.com")
    Contact.objects.filter(pk=contact.pk).update(updated_at=LATE)
    client = Client()
    client.force_login(make_member(workspace=place, role=Role.OWNER))
    return client


def test_admin_times_are_the_workspaces_local_time_written_the_readers_way() -> None:
    client = _owner_client(timezone="Europe/Rome")
    italian = client.get("/admin/contacts/contact/", HTTP_ACCEPT_LANGUAGE="it").content.decode()
    assert "25 Novembre 2026 00:30" in italian
    english = client.get("/admin/contacts/contact/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Nov. 25, 2026, 12:30 a.m." in english


def test_a_workspace_without_a_zone_shows_the_installs() -> None:
    client = _owner_client(timezone="")
    page = client.get("/admin/contacts/contact/", HTTP_ACCEPT_LANGUAGE="it").content.decode()
    assert "24 Novembre 2026 23:30" in page


def test_a_zone_name_edited_by_hand_falls_back_instead_of_failing() -> None:
    client = _owner_client(timezone="Mars/Olympus")
    page = client.get("/admin/contacts/contact/", HTTP_ACCEPT_LANGUAGE="it")
    assert page.status_code == 200
    assert "24 Novembre 2026 23:30" in page.content.decode()


def test_the_api_keeps_utc_whatever_the_workspaces_zone() -> None:
    from tests.workspaces import bearer, make_api_key

    place = make_workspace(timezone="Europe/Rome")
    contact = make_contact(workspace=place, email="john@example.com")
    Contact.objects.filter(pk=contact.pk).update(updated_at=LATE)
    user = make_member(workspace=place, role=Role.OWNER)
    api = Client(**bearer(make_api_key(user=user, workspace=place)))
    body = api.get(f"/api/v1/contacts/{contact.pk}/").json()
    assert body["updated_at"].startswith("2026-11-24T23:30:00")
