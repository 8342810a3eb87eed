"""The admin drill page never replans an audience in its request: it enqueues the drill, answers
"running" with a self-refresh, and shows the worker's report once it is there (campaigns.drill)."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns import tasks
from contacts.models import Channel
from tests.campaigns.reroute_factories import make_campaign
from tests.campaigns.test_outage_pages import member_client, page
from tests.delivery.test_materialize import contact_with

pytestmark = pytest.mark.django_db

DRILL = "/admin/campaigns/reroute/drill/?network=instagram"


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str, Any]]:
    """Enqueued drills, kept for the test to run as the worker would (no worker here)."""
    jobs: list[tuple[int, str, Any]] = []

    def record(*, workspace_id: int, network: str, campaign_ids: list[int] | None) -> None:
        jobs.append((workspace_id, network, campaign_ids))

    monkeypatch.setattr(tasks, "drill_enqueue", record)
    return jobs


def test_the_page_answers_running_then_shows_the_workers_report(
    settings: Any, queued: list[tuple[int, str, Any]]
) -> None:
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    for _ in range(2):
        contact_with(Channel.SMS, email=False, push=False)
    make_campaign(fallback=("sms",), due_in_minutes=30, name="Reroutes")
    client = member_client()
    first = page(client, DRILL)
    assert "The drill is running" in first
    assert 'http-equiv="refresh"' in first
    assert "Would send now" not in first
    assert len(queued) == 1
    # Asked again while it runs: still one run.
    assert "The drill is running" in page(client, DRILL)
    assert len(queued) == 1
    # The worker plans it.
    workspace_id, network, campaign_ids = queued[0]
    assert tasks.drill_run(workspace_id, network, campaign_ids) == "done"
    done = page(client, DRILL)
    assert "The drill is running" not in done and 'http-equiv="refresh"' not in done
    now_row = done.split("Would send now (campaigns that reroute)")[1].split("</tr>")[0]
    assert "<td>2</td>" in now_row
    assert "Run it again" in done
    assert len(queued) == 1  # a finished report is shown, not replanned
    # "Run it again" replans on demand, and the refresh it gets does not ask again.
    again = page(client, DRILL + "&fresh=1")
    assert "The drill is running" in again
    assert 'url=/admin/campaigns/reroute/drill/?network=instagram"' in again
    assert len(queued) == 2


def test_a_drill_of_another_workspace_is_not_shown_here(
    queued: list[tuple[int, str, Any]],
) -> None:
    from tests.workspaces import make_workspace

    make_campaign(due_in_minutes=30, name="Mine")
    page(member_client(), DRILL)
    workspace_id, network, campaign_ids = queued[0]
    tasks.drill_run(workspace_id, network, campaign_ids)
    other = member_client(workspace=make_workspace())
    html = page(other, DRILL)
    assert "The drill is running" in html and "Mine" not in html
