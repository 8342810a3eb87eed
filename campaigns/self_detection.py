"""Self-detection: our own publishing outcomes open and close outage windows.

Every call to a network (a publish or a probe) leaves one PublishAttempt row. After a
transient or unknown outcome, the rule in delivery.publishers.health is evaluated over the
recent attempts of that network; crossing it opens a window through outages/ with the source
"self_detected". While such a window is open, a probe per network (a connection check, the
cheapest authenticated call each API has) runs from the beat tick, and enough successes in a
row resolve our signal, which closes the window unless a monitor still holds it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from campaigns.accounts import social_account_ref
from campaigns.models import AttemptKind, PublishAttempt, SocialAccount
from delivery.publishers import publisher_for
from delivery.publishers.base import OutcomeKind, PublishTransient
from delivery.publishers.health import (
    COUNTED,
    HealthThresholds,
    PublishOutcome,
    network_health_evaluate,
    network_recovered,
)
from outages.models import OpenedBy, OutageSignal, OutageWindow, SignalState, WindowState
from outages.windows import outage_signal_apply

logger = logging.getLogger(__name__)

INCIDENT_KEY = "publishing"


def self_detection_source_ref(network: str) -> str:
    return f"publisher:{network}"


def publish_attempt_record(
    *,
    workspace_id: int,
    network: str,
    kind: str,
    account_id: int | None,
    post_id: int | None = None,
    detail: str = "",
    probe: bool = False,
    at: datetime | None = None,
) -> PublishAttempt:
    """One publish or probe and how it ended, in the account's workspace. Self-detection reads
    every workspace's attempts together: a network is down for everyone."""
    return PublishAttempt.objects.create(
        workspace_id=workspace_id,
        at=at or timezone.now(),
        network=network,
        account_id=account_id,
        post_id=post_id,
        kind=kind,
        detail=detail[:500],
        probe=probe,
    )


def _outcomes(network: str, since: datetime) -> list[PublishOutcome]:
    rows = PublishAttempt.objects.filter(network=network, at__gt=since).values_list(
        "at", "account_id", "kind"
    )
    return [
        PublishOutcome(at, network, str(account_id), cast(OutcomeKind, kind))
        for at, account_id, kind in rows
    ]


def network_health_check(*, network: str, now: datetime | None = None) -> int | None:
    """Evaluate ``network`` after a failure; open a self-detected window when it crossed the
    threshold. Returns the window id it opened or joined, else None."""
    now = now or timezone.now()
    limits = HealthThresholds.from_settings()
    since = now - timedelta(seconds=limits.window_s)
    # Failures from before the last window closed were that outage's: they must not reopen it.
    last_closed = OutageWindow.objects.filter(
        network=network, state=WindowState.RESOLVED
    ).aggregate(last=Max("closed_at"))["last"]
    if last_closed is not None and last_closed > since:
        since = last_closed
    verdict = network_health_evaluate(
        outcomes=_outcomes(network, since), network=network, now=now, thresholds=limits
    )
    if not verdict.failing:
        return None
    if _our_signal_firing(network):
        return None
    outcome = outage_signal_apply(
        network=network,
        firing=True,
        source_kind=OpenedBy.SELF_DETECTED,
        source_ref=self_detection_source_ref(network),
        incident_key=INCIDENT_KEY,
        started_at=now,
        summary=f"Self-detected from our own publishing: {verdict.reason}",
    )
    logger.warning(
        "self-detected outage on %s (%s): %s",
        network,
        outcome.action,
        verdict.reason,
        extra={"network": network, "window_id": outcome.window_id},
    )
    return outcome.window_id


def _our_signal_firing(network: str) -> bool:
    return OutageSignal.objects.filter(
        network=network,
        source_kind=OpenedBy.SELF_DETECTED,
        source_ref=self_detection_source_ref(network),
        incident_key=INCIDENT_KEY,
        state=SignalState.FIRING,
        window__state=WindowState.OPEN,
    ).exists()


def networks_to_probe(*, now: datetime | None = None) -> list[str]:
    """Networks with an open window our own signal holds whose last probe is old enough."""
    now = now or timezone.now()
    networks = sorted(
        set(
            OutageSignal.objects.filter(
                source_kind=OpenedBy.SELF_DETECTED,
                state=SignalState.FIRING,
                incident_key=INCIDENT_KEY,
                window__state=WindowState.OPEN,
            ).values_list("network", flat=True)
        )
    )
    recent = now - timedelta(seconds=settings.CAMPAIGNS_PROBE_INTERVAL_S)
    probed = set(
        PublishAttempt.objects.filter(network__in=networks, probe=True, at__gt=recent)
        .values_list("network", flat=True)
        .distinct()
    )
    return [network for network in networks if network not in probed]


def network_probe(*, network: str, now: datetime | None = None) -> bool:
    """Check a few accounts of ``network``; resolve our signal once it works again. Returns
    whether our signal was resolved."""
    active = SocialAccount.objects.filter(network=network, active=True)
    with_token = active.exclude(access_token_encrypted="")  # an empty column  # nosec B106
    accounts = list(
        with_token.order_by("last_checked_at", "id")[: settings.CAMPAIGNS_PROBE_ACCOUNTS]
    )
    window = (
        OutageWindow.objects.filter(network=network, state=WindowState.OPEN)
        .order_by("-opened_at")
        .first()
    )
    if window is None or not _our_signal_firing(network):
        return False
    publisher = publisher_for(network=network)
    for account in accounts:
        ref = social_account_ref(account=account)
        if ref is None:
            continue
        status = publisher.check_connection(account=ref)
        kind = AttemptKind.OK if status.ok else (status.error or PublishTransient("")).kind
        publish_attempt_record(
            workspace_id=account.workspace_id,
            network=network,
            kind=kind,
            account_id=account.pk,
            detail=status.detail,
            probe=True,
        )
    since = window.opened_at
    if not network_recovered(outcomes=_outcomes(network, since), network=network, since=since):
        return False
    outcome = outage_signal_apply(
        network=network,
        firing=False,
        source_kind=OpenedBy.SELF_DETECTED,
        source_ref=self_detection_source_ref(network),
        incident_key=INCIDENT_KEY,
        ended_at=now or timezone.now(),
        summary="publishing works again (probes and publishes succeeded)",
    )
    logger.info(
        "self-detected outage on %s resolved (%s)",
        network,
        outcome.action,
        extra={"network": network, "window_id": outcome.window_id},
    )
    return True


def outcome_counts_toward_outage(kind: str) -> bool:
    return kind in COUNTED
