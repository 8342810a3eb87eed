"""Retention also expires expired sessions, django-axes' failed sign-in attempts past their
period (never one still counting towards a lockout), and suppressions lifted longer ago than the
consent evidence's period; active suppressions never."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessAttemptExpiration
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from contacts.models import Channel, Suppression, SuppressionReason
from continuity import retention_rules as rules
from continuity.retention import EXPIRED_SESSIONS, retention_kind, retention_run
from tests.contacts.factories import make_contact
from tests.workspaces import make_workspace

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _session(*, expires_in: timedelta) -> str:
    store = SessionStore()
    store["member"] = 1
    store.create()
    Session.objects.filter(pk=store.session_key).update(expire_date=timezone.now() + expires_in)
    assert store.session_key is not None
    return store.session_key


def test_expired_sessions_go_and_live_ones_stay() -> None:
    expired = [_session(expires_in=-timedelta(seconds=5)) for _ in range(3)]
    live = _session(expires_in=timedelta(hours=1))

    report = retention_run(kinds=[EXPIRED_SESSIONS], batch=2)

    assert report.deleted == {EXPIRED_SESSIONS: 3}
    assert EXPIRED_SESSIONS in report.finished
    assert list(Session.objects.values_list("pk", flat=True)) == [live]
    assert not Session.objects.filter(pk__in=expired).exists()


def _attempt(username: str, *, days_ago: float) -> AccessAttempt:
    attempt = AccessAttempt.objects.create(
        username=username,
        ip_address="203.0.113.9",
        user_agent="curl/8",
        http_accept="*/*",
        path_info="/admin/login/",
        get_data="",
        post_data="",
        failures_since_start=3,
    )
    AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=timezone.now() - days_ago * DAY)
    return attempt


def test_failed_sign_ins_past_the_period_go_with_their_expiry_and_recent_ones_stay() -> None:
    old = _attempt("mallory", days_ago=31)
    AccessAttemptExpiration.objects.create(access_attempt=old, expires_at=timezone.now() - 30 * DAY)
    recent = _attempt("alice", days_ago=2)
    counting = _attempt("bob", days_ago=0)

    report = retention_run(kinds=[rules.LOGIN_ATTEMPTS])

    assert report.deleted == {rules.LOGIN_ATTEMPTS: 1}
    assert set(AccessAttempt.objects.values_list("pk", flat=True)) == {recent.pk, counting.pk}
    assert not AccessAttemptExpiration.objects.exists()


def test_a_failed_sign_in_inside_the_cool_off_is_never_due() -> None:
    kind = retention_kind(rules.LOGIN_ATTEMPTS)
    assert kind.per_workspace is False
    assert "make_interval(secs => 900)" in kind.where  # LOGIN_COOLOFF_MINUTES' default, 15


def test_suppressions_lifted_longer_ago_than_the_period_go_and_active_ones_never() -> None:
    workspace = make_workspace()
    contact = make_contact(workspace=workspace)
    now = timezone.now()
    period = rules.DEFAULT_DAYS[rules.LIFTED_SUPPRESSIONS]

    def suppression(channel: str, *, active: bool, lifted_days_ago: float | None) -> Suppression:
        row = Suppression.objects.create(
            workspace=workspace,
            contact=contact,
            channel=channel,
            reason=SuppressionReason.MANUAL,
            active=active,
            lifted_at=now - lifted_days_ago * DAY if lifted_days_ago is not None else None,
        )
        Suppression.objects.filter(pk=row.pk).update(created_at=now - (period + 400) * DAY)
        return row

    gone = suppression(Channel.EMAIL, active=False, lifted_days_ago=period + 1)
    lifted_lately = suppression(Channel.SMS, active=False, lifted_days_ago=period - 10)
    active = suppression(Channel.PUSH, active=True, lifted_days_ago=None)

    report = retention_run(kinds=[rules.LIFTED_SUPPRESSIONS])

    assert report.deleted == {rules.LIFTED_SUPPRESSIONS: 1}
    left = set(Suppression.objects.values_list("pk", flat=True))
    assert left == {lifted_lately.pk, active.pk}
    assert gone.pk not in left
