from __future__ import annotations

from celery import shared_task

from continuity.health import heartbeat_record


@shared_task(name="continuity.heartbeat", ignore_result=True)
def heartbeat(name: str = "beat") -> None:
    # Scheduled by beat and run by a worker, so a fresh "beat" row proves both are alive.
    heartbeat_record(name=name)


@shared_task(name="continuity.retention.run", ignore_result=True)
def retention_run_task() -> dict[str, int]:
    """Enforce every retention period (beat, RETENTION_INTERVAL_S; continuity/retention.py)."""
    from continuity.retention import retention_run

    return retention_run().deleted
