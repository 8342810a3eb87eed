"""How many campaigns an outage would touch: a hook the campaigns app fills in later.

outages cannot import campaigns, so campaigns registers a counter here (or the setting
OUTAGES_IMPACT_COUNTER names one by dotted path). Until then the count is unknown (None).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

ImpactCounter = Callable[..., int]
_registered: ImpactCounter | None = None


def impact_counter_register(*, counter: ImpactCounter | None) -> None:
    """Install ``counter(network=...) -> int`` (None uninstalls). Called from an AppConfig.ready."""
    global _registered  # noqa: PLW0603 - a process-wide extension point, set once at start-up
    _registered = counter


def outage_impact_count(*, network: str) -> int | None:
    """Campaigns an outage of ``network`` would touch, or None when nobody can tell yet."""
    counter = _registered
    if counter is None and settings.OUTAGES_IMPACT_COUNTER:
        counter = import_string(settings.OUTAGES_IMPACT_COUNTER)
    if counter is None:
        return None
    try:
        return int(counter(network=network))
    except Exception:
        logger.exception("impact counter failed for %s", network)
        return None
