"""Periodic housekeeping for the outages app (scheduled by beat, see outages/apps.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from outages.receipts import receipts_refused_prune
from outages.windows import silent_windows_close

logger = logging.getLogger(__name__)


@shared_task(name="outages.windows.silent_close", ignore_result=True)
def close_silent_windows() -> list[int]:
    """Close windows whose every holder went silent, where their sources are set to (beat)."""
    closed = silent_windows_close()
    if closed:
        logger.info("closed %s silent outage windows", len(closed), extra={"window_ids": closed})
    return closed


@shared_task(name="outages.receipts.prune_refused", ignore_result=True)
def prune_refused_receipts() -> int:
    """Keep refused monitor-webhook receipts within their caps (beat; continuity/celery.py)."""
    return receipts_refused_prune()
