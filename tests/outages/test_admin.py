"""Admin: a new user creates a source, sees its secret once, rotates it, declares and resolves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from outages.impact import impact_counter_register
from outages.models import MonitorSource, OutageWindow, WebhookReceipt
from outages.windows import outage_declare
from tests.outages.factories import sample_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    user = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def counter() -> Iterator[None]:
    impact_counter_register(counter=lambda *, network: {"facebook": 7}.get(network, 0))
    yield
    impact_counter_register(counter=None)


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_creating_a_source_shows_its_secret_once_and_it_authenticates(staff: Client) -> None:
    response = staff.post(
        "/admin/outages/monitorsource/add/",
        {
            "name": "Prod Alertmanager",
            "slug": "prod-am",
            "kind": "alertmanager",
            "default_network": "facebook",
            "mapping_rules": "[]",
            "options": "{}",
            "active": "on",
        },
        follow=True,
    )
    text = " ".join(_messages(response))
    secret = re.search(r"<code>([^<]+)</code>", text).group(1)  # type: ignore[union-attr]
    assert "/hooks/monitors/prod-am/" in text
    source = MonitorSource.objects.get(slug="prod-am")
    assert secret not in source.credentials.get().secret_encrypted
    page = staff.get(f"/admin/outages/monitorsource/{source.pk}/change/")
    assert secret not in page.content.decode()  # never shown again
    hook = Client().post(
        "/hooks/monitors/prod-am/",
        data=sample_bytes("alertmanager", "firing"),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert hook.status_code == 200
    assert OutageWindow.objects.get().network == "facebook"  # the default network


def test_bad_mapping_rules_are_refused_in_words(staff: Client) -> None:
    response = staff.post(
        "/admin/outages/monitorsource/add/",
        {
            "name": "Kuma",
            "slug": "kuma",
            "kind": "uptime_kuma",
            "default_network": "",
            "mapping_rules": '[{"match": "monitor.name", "regex": "(", "network": "myspace"}]',
            "options": "{}",
        },
    )
    body = response.content.decode()
    assert "invalid regex" in body
    assert "unknown network" in body
    assert not MonitorSource.objects.exists()


def test_rotate_action_issues_a_new_secret_and_keeps_the_old_one_for_the_overlap(
    staff: Client,
) -> None:
    from tests.outages.factories import source_create

    source = source_create(kind="alertmanager")
    response = staff.post(
        "/admin/outages/monitorsource/",
        {"action": "rotate_secret", "_selected_action": [source.pk]},
        follow=True,
    )
    assert "will not be shown again" in " ".join(_messages(response))
    credentials = list(source.credentials.order_by("created_at"))
    assert len(credentials) == 2
    assert credentials[0].expires_at is not None
    assert credentials[1].expires_at is None


def test_declaring_shows_an_are_you_sure_page_with_the_campaign_count(
    staff: Client, counter: None
) -> None:
    form = {"network": "facebook", "reason": "Graph API down"}
    confirm = staff.post("/admin/outages/outagewindow/add/", form)
    assert "Campaigns this will touch: <strong>7</strong>" in confirm.content.decode()
    assert not OutageWindow.objects.exists()
    staff.post("/admin/outages/outagewindow/add/", {**form, "confirmed": "yes"})
    window = OutageWindow.objects.get()
    assert (window.network, window.opened_by, window.reason) == (
        "facebook",
        "manual",
        "Graph API down",
    )


def test_the_count_is_unknown_when_no_counter_is_configured(staff: Client, settings: Any) -> None:
    settings.OUTAGES_IMPACT_COUNTER = ""
    confirm = staff.post("/admin/outages/outagewindow/add/", {"network": "x", "reason": "r"})
    assert "<strong>unknown</strong>" in confirm.content.decode()


def test_resolving_from_the_admin_asks_first_then_closes(staff: Client) -> None:
    window = outage_declare(network="youtube", reason="down", actor="ops")
    url = "/admin/outages/outagewindow/"
    ask = staff.post(url, {"action": "resolve_outages", "_selected_action": [window.pk]})
    assert "Resolve these outages?" in ask.content.decode()
    window.refresh_from_db()
    assert window.state == "open"
    staff.post(
        url,
        {
            "action": "resolve_outages",
            "_selected_action": [window.pk],
            "confirmed": "yes",
            "reason": "API back",
        },
    )
    window.refresh_from_db()
    assert (window.state, window.close_reason) == ("resolved", "API back")


def test_every_admin_page_shows_the_open_outages_banner_and_keeps_the_branding(
    staff: Client,
) -> None:
    outage_declare(network="threads", reason="Threads API 503", actor="ops")
    for url in ("/admin/", "/admin/auth/user/", "/admin/outages/webhookreceipt/"):
        page = staff.get(url).content.decode()
        assert "outages-banner" in page
        assert "Threads" in page
        assert "Django administration" in page
    login = Client().get("/admin/login/").content.decode()
    assert "outages-banner" not in login
    assert "Django administration" in login


def test_receipts_are_read_only_and_filterable_by_verdict(staff: Client) -> None:
    WebhookReceipt.objects.create(slug="x", method="POST", verdict="unauthorized", status_code=401)
    listing = staff.get("/admin/outages/webhookreceipt/?verdict=unauthorized")
    assert listing.status_code == 200
    assert staff.get("/admin/outages/webhookreceipt/add/").status_code == 403


def test_window_and_source_pages_render(staff: Client) -> None:
    from tests.outages.factories import source_create

    window = outage_declare(network="linkedin", reason="down", actor="ops")
    source = source_create(kind="statuspage")
    assert staff.get(f"/admin/outages/outagewindow/{window.pk}/change/").status_code == 200
    page = staff.get(f"/admin/outages/monitorsource/{source.pk}/change/").content.decode()
    assert f"/hooks/monitors/{source.slug}/?token=&lt;secret&gt;" in page


def test_a_sender_generated_secret_can_be_pasted_and_later_replaced(staff: Client) -> None:
    from outages.credentials import source_with_secrets

    form = {
        "name": "PagerDuty",
        "slug": "pd",
        "kind": "pagerduty",
        "default_network": "x",
        "mapping_rules": "[]",
        "options": "{}",
        "active": "on",
        "new_secret": "pd-generated-secret-1234567890",
    }
    staff.post("/admin/outages/monitorsource/add/", form)
    source = MonitorSource.objects.get(slug="pd")
    assert source_with_secrets(slug="pd")[1] == ["pd-generated-secret-1234567890"]
    staff.post(
        f"/admin/outages/monitorsource/{source.pk}/change/",
        {**form, "new_secret": "pd-rotated-secret-0987654321"},
    )
    assert set(source_with_secrets(slug="pd")[1]) == {
        "pd-generated-secret-1234567890",
        "pd-rotated-secret-0987654321",
    }


def test_a_manual_declare_and_resolve_in_the_admin_are_audited_install_wide(
    staff: Client,
) -> None:
    from continuity.models import AuditEvent

    staff.post(
        "/admin/outages/outagewindow/add/",
        {"network": "facebook", "reason": "Graph down", "confirmed": "yes"},
    )
    window = OutageWindow.objects.get()
    staff.post(
        "/admin/outages/outagewindow/",
        {
            "action": "resolve_outages",
            "_selected_action": [window.pk],
            "confirmed": "yes",
            "reason": "back",
        },
    )
    events = AuditEvent.objects.order_by("id")
    assert [(e.action, e.workspace_id, e.actor_label, e.target_id) for e in events] == [
        ("outage.declare", None, "ops", str(window.pk)),
        ("outage.resolve", None, "ops", str(window.pk)),
    ]


def test_a_workspace_member_sees_the_banner_but_cannot_open_declare_or_resolve(
    client: Client,
) -> None:
    from continuity.models import Role
    from tests.workspaces import make_member, make_workspace

    window = outage_declare(network="threads", reason="Threads API 503", actor="ops")
    client.force_login(make_member(workspace=make_workspace(), role=Role.OWNER))

    page = client.get("/admin/").content.decode()
    assert "outages-banner" in page and "Threads" in page
    assert f"/admin/outages/outagewindow/{window.pk}/change/" not in page
    assert client.get("/admin/outages/outagewindow/").status_code == 403
    declare = {"network": "x", "reason": "r", "confirmed": "yes"}
    assert client.post("/admin/outages/outagewindow/add/", declare).status_code == 403
    client.post(
        "/admin/outages/outagewindow/",
        {"action": "resolve_outages", "_selected_action": [window.pk], "confirmed": "yes"},
    )
    assert OutageWindow.objects.get().state == "open"
    assert OutageWindow.objects.count() == 1


def test_a_staff_user_who_may_only_view_windows_cannot_declare_or_resolve(client: Client) -> None:
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("watcher", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outagewindow"))
    client.force_login(viewer)
    window = outage_declare(network="youtube", reason="down", actor="ops")

    assert client.get("/admin/outages/outagewindow/").status_code == 200
    declare = {"network": "x", "reason": "r", "confirmed": "yes"}
    assert client.post("/admin/outages/outagewindow/add/", declare).status_code == 403
    client.post(
        "/admin/outages/outagewindow/",
        {
            "action": "resolve_outages",
            "_selected_action": [window.pk],
            "confirmed": "yes",
            "reason": "r",
        },
    )
    window.refresh_from_db()
    assert window.state == "open"
    assert OutageWindow.objects.count() == 1


def test_an_operator_from_the_command_line_manages_outages_in_the_admin(client: Client) -> None:
    import io

    from django.core.management import call_command

    call_command("operator_add", "oscar", stdout=io.StringIO())
    client.force_login(User.objects.get(username="oscar"))
    confirm = client.post("/admin/outages/outagewindow/add/", {"network": "x", "reason": "r"})
    assert confirm.status_code == 200
    assert client.get("/admin/outages/monitorsource/").status_code == 200
