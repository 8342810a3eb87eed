"""Quiet hours in an Italian workspace (#17): each contact's own time zone decides, at planning
and again at send; a contact without one is judged by the workspace's (Europe/Rome), never by
the install's or the server's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Channel
from delivery.claim import deliveries_claim
from delivery.models import Delivery
from delivery.quiet_hours import QUIET_HOURS_CODE, quiet_rules
from delivery.states import DeliveryStatus as S
from tests.campaigns.reroute_factories import make_campaign, network_down
from tests.campaigns.test_workspaces import reroute_everything
from tests.delivery.test_materialize import contact_with
from tests.workspaces import make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def install_rules(settings: Any) -> None:
    # The install's own zone is UTC and it has no quiet hours: only the workspace's apply.
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    settings.REROUTE_DEFAULT_TIMEZONE = "UTC"


def test_each_contacts_own_zone_decides_at_planning_and_again_at_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rossi = make_workspace(
        slug="rossi", language="it", timezone="Europe/Rome", quiet_hours_sms="21:00-08:00"
    )
    # 06:30 UTC: 07:30 in Rome (quiet until 08:00), 01:30 in New York (quiet), 15:30 in Tokyo.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 24, 6, 30, tzinfo=UTC))
    rome = contact_with(Channel.SMS, email=False, push=False, tz="", workspace=rossi)
    new_york = contact_with(
        Channel.SMS, email=False, push=False, tz="America/New_York", workspace=rossi
    )
    tokyo = contact_with(Channel.SMS, email=False, push=False, tz="Asia/Tokyo", workspace=rossi)
    make_campaign(workspace=rossi, fallback=("sms",))

    (reroute,) = reroute_everything(network_down().pk)

    planned = dict(Delivery.objects.values_list("contact_id", "not_before"))
    assert planned[rome.pk] == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 in Rome
    assert planned[new_york.pk] == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 08:00 in New York
    assert planned[tokyo.pk] is None
    assert reroute.exclusions.get("delayed_quiet_hours") == 2

    # At send, 12:30 UTC: Tokyo's 21:30 has begun its quiet hours since planning, Rome's 13:30
    # has not; New York's row is not due yet. The claim judges each by its own clock again.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 24, 12, 30, tzinfo=UTC))
    rows = dict(Delivery.objects.values_list("contact_id", "pk"))
    ids = [rows[rome.pk], rows[tokyo.pk]]
    Delivery.objects.filter(pk__in=ids).update(status=S.QUEUED, not_before=None)
    claimed = deliveries_claim(
        ids=ids, channel="sms", purpose="marketing", quiet=quiet_rules(workspace=rossi)
    )
    assert claimed == [rows[rome.pk]]
    held = Delivery.objects.get(pk=rows[tokyo.pk])
    # Held until 08:00 in Tokyo, 23:00 UTC.
    assert (held.status, held.not_before, held.error_code) == (
        S.QUEUED,
        datetime(2026, 11, 24, 23, 0, tzinfo=UTC),
        QUIET_HOURS_CODE,
    )
