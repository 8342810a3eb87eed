"""Admin sign-in throttling (django-axes through continuity/login_throttle.py), through the real
admin login form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from continuity.login_throttle import login_username
from continuity.models import AuditEvent, Role
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "a-long-and-right-password-4711"  # nosec B105 - a throwaway test user's password


@pytest.fixture
def staff(settings: Any) -> Any:
    settings.AXES_FAILURE_LIMIT = 3
    return make_member(workspace=workspace_for_tests(), role=Role.OWNER, password=PASSWORD)


def _login(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_limit_th_failure_locks_the_name_from_that_address_with_a_429_page(
    staff: Any,
) -> None:
    client = Client()
    for _ in range(2):
        assert _login(client, staff.username, "wrong").status_code == 200
    locked = _login(client, staff.username, "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-in attempts" in page
    assert "15 minutes" in page
    assert 'id="site-name"' in page  # the admin's header: its look, not a bare error
    assert "Traceback" not in page
    assert 14 * 60 < int(locked["Retry-After"]) <= 15 * 60
    # Even the right password is refused while the pair is locked.
    again = _login(client, staff.username, PASSWORD)
    assert again.status_code == 429
    assert not _signed_in(client)


def test_the_page_counts_down_from_the_last_counted_failure(staff: Any) -> None:
    client = Client()
    for _ in range(3):
        _login(client, staff.username, "wrong")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=10))
    refused = _login(client, staff.username, PASSWORD)
    assert refused.status_code == 429
    assert 4 * 60 < int(refused["Retry-After"]) <= 5 * 60
    assert "5 minutes" in refused.content.decode()


def test_another_address_or_another_name_is_not_locked_by_someone_elses_failures(
    staff: Any,
) -> None:
    for _ in range(3):
        _login(Client(), staff.username, "wrong", REMOTE_ADDR="203.0.113.9")
    elsewhere = Client()
    response = _login(elsewhere, staff.username, PASSWORD, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 302
    assert _signed_in(elsewhere)
    other = make_member(workspace=workspace_for_tests(), role=Role.VIEWER, password=PASSWORD)
    same_address = Client()
    assert (
        _login(same_address, other.username, PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 302
    )


def test_a_successful_sign_in_clears_the_earlier_failures(staff: Any) -> None:
    client = Client()
    for _ in range(2):
        _login(client, staff.username, "wrong")
    assert _login(client, staff.username, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username=staff.username).exists()
    client.logout()
    # Two more failures are again below the limit of three.
    for _ in range(2):
        assert _login(Client(), staff.username, "wrong").status_code == 200
    assert _login(Client(), staff.username, PASSWORD).status_code == 302


def test_failures_and_the_lockout_are_in_the_audit_trail_and_locked_attempts_add_nothing(
    staff: Any,
) -> None:
    client = Client()
    for _ in range(3):
        _login(client, staff.username, "wrong", HTTP_USER_AGENT="bad\x00agent")
    for _ in range(5):
        assert _login(client, staff.username, "wrong").status_code == 429
    events = list(
        AuditEvent.objects.filter(action__startswith="auth.login")
        .order_by("id")
        .values("action", "outcome", "workspace", "actor", "detail")
    )
    assert [e["action"] for e in events] == [
        "auth.login_failed",
        "auth.login_failed",
        "auth.login_locked_out",
    ]
    assert all(e["outcome"] == "denied" and e["workspace"] is None for e in events)
    assert all(e["actor"] is None for e in events)
    assert events[-1]["detail"]["username"] == staff.username
    assert events[-1]["detail"]["ip"] == "127.0.0.1"
    assert "\x00" not in events[0]["detail"]["user_agent"]
    # The attempts made while locked neither counted nor extended anything.
    attempts = AccessAttempt.objects.filter(username=staff.username)
    assert sum(a.failures_since_start for a in attempts) == 3


def test_behind_a_trusted_proxy_the_forwarded_client_is_locked_not_the_proxy(
    staff: Any, settings: Any
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    via_proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(3):
        _login(Client(), staff.username, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.5", **via_proxy)
    assert AccessAttempt.objects.filter(ip_address="203.0.113.5").exists()
    refused = _login(
        Client(), staff.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5", **via_proxy
    )
    assert refused.status_code == 429
    # The same proxy forwarding another client: not locked.
    other = _login(
        Client(), staff.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1", **via_proxy
    )
    assert other.status_code == 302


def test_an_untrusted_peer_cannot_pick_its_address_with_x_forwarded_for(staff: Any) -> None:
    for n in range(3):
        _login(Client(), staff.username, "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}
    refused = _login(Client(), staff.username, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert refused.status_code == 429


def test_the_user_name_axes_stores_is_bounded_and_storable(rf: Any) -> None:
    request = rf.post(LOGIN)
    assert login_username(request, {"username": "x" * 5000}) == "x" * 255
    assert "\x00" not in (login_username(request, {"username": "nul\x00name"}) or "")
    assert login_username(rf.post(LOGIN, {"username": "from-form"}), None) == "from-form"
    # Through the form such names are refused by its own validation: a 200, never a 500.
    for name in ("x" * 5000, "nul\x00name"):
        assert _login(Client(), name, "wrong").status_code == 200


def test_api_keys_work_while_the_owners_admin_sign_in_is_locked(staff: Any) -> None:
    key = make_api_key(user=staff, workspace=workspace_for_tests())
    client = Client()
    for _ in range(3):
        _login(client, staff.username, "wrong")
    assert _login(client, staff.username, PASSWORD).status_code == 429
    me = Client().get("/api/v1/me/", **bearer(key))
    assert me.status_code == 200
    # Wrong API keys are the API's 401s, not sign-in failures: they lock nothing.
    for _ in range(5):
        assert Client().get("/api/v1/me/", **bearer("nope.nope")).status_code == 401
    assert AccessAttempt.objects.exclude(username=staff.username).count() == 0


def test_force_login_and_its_sessions_are_untouched_by_the_throttle(admin_client: Any) -> None:
    assert admin_client.get("/admin/").status_code == 200
    assert AccessAttempt.objects.count() == 0


def test_the_superuser_created_by_createsuperuser_signs_in_through_the_form() -> None:
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    assert _login(client, "root", PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200
