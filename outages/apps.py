from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _schedule_receipt_pruning(**_: Any) -> None:
    """Register the outages periodic tasks with django-celery-beat's database scheduler
    (idempotent): the silent-window check. Receipts expire with the retention run (#19,
    outages/retention.py); the old pruning task's row goes, or beat would call a task that no
    longer exists."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    PeriodicTask.objects.filter(name="outages.receipts.prune").delete()
    # Silent holders: windows no monitor has spoken for past its repeat limit (outages.windows).
    often, _created = IntervalSchedule.objects.get_or_create(
        every=settings.OUTAGES_SILENCE_CHECK_INTERVAL_S,
        period=IntervalSchedule.SECONDS,
    )
    PeriodicTask.objects.update_or_create(
        name="outages.windows.silent_close",
        defaults={"task": "outages.windows.silent_close", "interval": often, "queue": "control"},
    )


class OutagesConfig(AppConfig):
    name = "outages"
    verbose_name = _("Outages")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from outages.credentials import source_cache_clear
        from outages.models import MonitorCredential, MonitorSource

        post_migrate.connect(_schedule_receipt_pruning, sender=self)
        for model in (MonitorSource, MonitorCredential):
            post_save.connect(source_cache_clear, sender=model, dispatch_uid=f"outages-{model}")
            post_delete.connect(source_cache_clear, sender=model, dispatch_uid=f"outages-d-{model}")
