"""The Celery app: queues, routing and the reliability settings the architecture relies on."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging, task_postrun, task_prerun, worker_init
from kombu import Exchange, Queue

from continuity import broker_fs  # noqa: F401 - registers the embedded broker's URL scheme

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "continuity.settings")

QUEUE_CONTROL = "control"
QUEUE_SOCIAL = "social"
QUEUE_EMAIL = "email"
QUEUE_SMS = "sms"
QUEUE_PUSH = "push"
ALL_QUEUES = (QUEUE_CONTROL, QUEUE_SOCIAL, QUEUE_EMAIL, QUEUE_SMS, QUEUE_PUSH)
# Queues whose tasks call a provider. With Redis each worker process takes one message at a time
# (prefetch 1, see settings), so a slow provider never strands a prefetched backlog behind it.
SEND_QUEUES = (QUEUE_SOCIAL, QUEUE_EMAIL, QUEUE_SMS, QUEUE_PUSH)

# Routing by task name, so a task's queue is decided here and nowhere else. Name a task
# "<app>.<channel>.<verb>" to land on that channel's queue; anything unmatched runs on `control`.
TASK_ROUTES = {
    "*.social.*": {"queue": QUEUE_SOCIAL},
    "*.email.*": {"queue": QUEUE_EMAIL},
    "*.sms.*": {"queue": QUEUE_SMS},
    "*.push.*": {"queue": QUEUE_PUSH},
    "*.whatsapp.*": {"queue": QUEUE_SOCIAL},
}

app = Celery("continuity")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.update(
    # Each queue gets its own exchange and routing key. A bare Queue(name) binds to the default
    # exchange with the default key, and a direct exchange then copies every task to every queue.
    task_queues=[
        Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ALL_QUEUES
    ],
    task_default_queue=QUEUE_CONTROL,
    task_routes=TASK_ROUTES,
    # Late acks mean a crash re-runs the task: safe because every task is an idempotent claim.
    task_acks_late=True,
    # Requeuing on a lost worker can loop forever on a task that kills its process; the sweeper
    # recovers such rows from PostgreSQL instead.
    task_reject_on_worker_lost=False,
    task_ignore_result=True,
    result_backend=None,
    task_track_started=False,
    task_time_limit=30 * 60,
    task_soft_time_limit=25 * 60,
    # On SIGTERM, give running tasks a moment to finish, then requeue what is left (Celery 5.5+).
    # An idle worker exits at once: no task here relies on ETAs that would need requeuing.
    worker_soft_shutdown_timeout=10.0,
    # Never give up on the broker: log, wait and try again rather than exit and crash-loop.
    broker_connection_retry=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_connection_timeout=5,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    timezone="UTC",
    enable_utc=True,
)

app.autodiscover_tasks()


def _beat_schedule() -> dict[str, dict[str, Any]]:
    from django.conf import settings

    return {
        "continuity.heartbeat": {
            "task": "continuity.heartbeat",
            "schedule": timedelta(seconds=settings.BEAT_HEARTBEAT_INTERVAL_S),
            "options": {"queue": QUEUE_CONTROL, "expires": settings.BEAT_HEARTBEAT_INTERVAL_S},
        },
        "campaigns.reroute_holds_check": {
            "task": "campaigns.reroute_holds_check",
            "schedule": timedelta(seconds=settings.REROUTE_HOLD_CHECK_INTERVAL_S),
            "options": {"queue": QUEUE_CONTROL, "expires": settings.REROUTE_HOLD_CHECK_INTERVAL_S},
        },
        "delivery.sweep": {
            "task": "delivery.sweep",
            "schedule": timedelta(seconds=settings.DELIVERY_SWEEP_INTERVAL_S),
            "options": {"queue": QUEUE_CONTROL, "expires": settings.DELIVERY_SWEEP_INTERVAL_S},
        },
        "campaigns.dispatch_due": {
            "task": "campaigns.dispatch_due",
            "schedule": timedelta(seconds=settings.CAMPAIGNS_DISPATCH_INTERVAL_S),
            "options": {"queue": QUEUE_CONTROL, "expires": settings.CAMPAIGNS_DISPATCH_INTERVAL_S},
        },
        # Every retention period, in short batches (continuity/retention.py, #19).
        "continuity.retention.run": {
            "task": "continuity.retention.run",
            "schedule": timedelta(seconds=settings.RETENTION_INTERVAL_S),
            "options": {"queue": QUEUE_CONTROL, "expires": settings.RETENTION_INTERVAL_S},
        },
        # Refused webhook receipts within their caps (continuity/receipt_caps.py, #14).
        **{
            task: {
                "task": task,
                "schedule": timedelta(seconds=settings.RECEIPTS_REFUSED_PRUNE_INTERVAL_S),
                "options": {
                    "queue": QUEUE_CONTROL,
                    "expires": settings.RECEIPTS_REFUSED_PRUNE_INTERVAL_S,
                },
            }
            for task in ("delivery.receipts.prune_refused", "outages.receipts.prune_refused")
        },
    }


@app.on_after_configure.connect
def _install_beat_schedule(sender: Celery, **_: Any) -> None:
    sender.conf.beat_schedule = _beat_schedule()


@worker_init.connect
@beat_init.connect
def _refuse_an_insecure_start(**_: Any) -> None:
    """Workers and beat refuse a production start with deploy errors, as web and preflight do:
    a worker holding sandbox stand-ins would send with them (continuity/checks.py)."""
    from continuity.checks import InsecureStart, start_refuse_if_insecure

    try:
        start_refuse_if_insecure()
    except InsecureStart as exc:
        # Celery logs and swallows an exception a signal handler raises; only an exit stops it.
        print(exc, file=sys.stderr)  # noqa: T201 - before logging is set up, as gunicorn does
        raise SystemExit(3) from None


@setup_logging.connect
def _use_django_logging(**_: Any) -> None:
    # Connecting this signal stops Celery from installing its own handlers and format, so worker
    # and beat lines come out in the project's one format (JSON in production) with the task id.
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, **_: Any) -> None:
    from continuity.logging import bind_context_id

    bind_context_id(f"task:{task_id}" if task_id else "-")


@task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    from continuity.logging import bind_context_id

    bind_context_id("-")
