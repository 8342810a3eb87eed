"""The campaigns app's domain errors, mapped once to the API error shape by continuity.api."""

from __future__ import annotations

from continuity.api import ContinuityError


class CampaignsError(ContinuityError):
    code = "campaigns_error"
    status_code = 400


class CampaignNotReady(CampaignsError):
    """Scheduling refused; ``detail`` is the list of problems the marketer must fix."""

    code = "campaign_not_ready"


class CampaignStateConflict(CampaignsError):
    """The action does not apply to the campaign's current status."""

    code = "campaign_state_conflict"
    status_code = 409


class TestSendRefused(CampaignsError):
    """A test send that could not be made or that the provider refused; ``detail`` says why."""

    code = "test_send_refused"
