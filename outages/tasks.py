"""Periodic housekeeping for the outages app (scheduled by beat, see outages/apps.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from outages.receipts import receipts_prune

logger = logging.getLogger(__name__)


@shared_task(name="outages.receipts.prune", ignore_result=True)
def prune_receipts() -> int:
    deleted = receipts_prune()
    logger.info("pruned %s old webhook receipts and delivery ids", deleted)
    return deleted
