"""Celery edges of the reroute engine (control queue): ids in, one use case, nothing else."""

from __future__ import annotations

from celery import shared_task

from campaigns import reroute


@shared_task(name="campaigns.reroute_window_opened", ignore_result=True)
def reroute_window_opened(window_id: int) -> int:
    return reroute.reroute_window_opened(window_id=window_id)


@shared_task(name="campaigns.reroute_plan", ignore_result=True)
def reroute_plan(reroute_id: int) -> None:
    # One slice per run, then run again: a large audience never holds one task (or one
    # transaction) for minutes, and a worker lost mid-plan resumes from the saved cursor.
    if reroute.reroute_plan_next_slice(reroute_id=reroute_id):
        reroute_plan.delay(reroute_id=reroute_id)


@shared_task(name="campaigns.reroute_holds_check", ignore_result=True)
def reroute_holds_check() -> int:
    # One periodic tick for the engine: holds whose wait ran out, and planning that stalled.
    return reroute.reroute_holds_check() + reroute.reroute_stalled_resume()


@shared_task(name="campaigns.reroute_window_closed", ignore_result=True)
def reroute_window_closed(window_id: int) -> dict[str, int]:
    return reroute.reroute_window_closed(window_id=window_id)
