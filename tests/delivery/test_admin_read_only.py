"""A delivery's admin page is a record: no Save, no Delete; the list keeps "retry failed"."""

from __future__ import annotations

import pytest
from django.test import Client

from contacts.models import Channel
from continuity.admin_access import SESSION_KEY
from continuity.models import Role
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
from tests.delivery.test_dispatch import make_message
from tests.delivery.test_materialize import contact_with
from tests.workspaces import make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


def marketer() -> Client:
    workspace = workspace_for_tests()
    client = Client()
    client.force_login(make_member(workspace=workspace, role=Role.MARKETER))
    session = client.session
    session[SESSION_KEY] = workspace.pk
    session.save()
    return client


def failed_delivery() -> Delivery:
    contact = contact_with(Channel.EMAIL, push=False)
    return Delivery.objects.create(
        workspace=contact.workspace,
        message=make_message(),
        contact=contact,
        channel="email",
        status=S.FAILED,
    )


def test_a_deliverys_page_has_no_save_and_no_delete_and_refuses_both() -> None:
    delivery = failed_delivery()
    client = marketer()
    url = f"/admin/delivery/delivery/{delivery.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert "/delete/" not in html
    assert client.post(url, {"status": "delivered"}).status_code == 403
    assert (
        client.post(f"/admin/delivery/delivery/{delivery.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    delivery.refresh_from_db()
    assert delivery.status == S.FAILED


def test_the_list_still_retries_failed_deliveries() -> None:
    delivery = failed_delivery()
    response = marketer().post(
        "/admin/delivery/delivery/",
        {"action": "retry_failed", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == S.QUEUED
