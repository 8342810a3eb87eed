from __future__ import annotations

import re

from continuity.celery import ALL_QUEUES, SEND_QUEUES, app
from tests.harness import ROOT


def _procfile_queues() -> set[str]:
    consumed: set[str] = set()
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.search(r"--queues\s+(\S+)", line)
        if match:
            consumed.update(match.group(1).split(","))
    return consumed


def test_every_project_task_routes_to_a_queue_a_procfile_worker_consumes() -> None:
    app.loader.import_default_modules()
    project_tasks = [name for name in app.tasks if not name.startswith("celery.")]
    assert "continuity.heartbeat" in project_tasks
    consumed = _procfile_queues()
    declared = {queue.name for queue in app.conf.task_queues}
    for name in project_tasks:
        queue = app.amqp.router.route({}, name)["queue"].name
        assert queue in declared, f"{name} routes to undeclared queue {queue}"
        assert queue in consumed, f"{name} routes to {queue}, which no Procfile worker consumes"


def test_task_names_pick_their_channel_queue() -> None:
    router = app.amqp.router
    assert router.route({}, "delivery.email.send_chunk")["queue"].name == "email"
    assert router.route({}, "delivery.sms.send_chunk")["queue"].name == "sms"
    assert router.route({}, "campaigns.social.publish_post")["queue"].name == "social"
    assert router.route({}, "outages.prune_receipts")["queue"].name == "control"


def test_each_queue_has_its_own_exchange_and_routing_key() -> None:
    bindings = {(q.exchange.name, q.routing_key) for q in app.conf.task_queues}
    assert len(bindings) == len(ALL_QUEUES)
    for queue in app.conf.task_queues:
        assert queue.routing_key == queue.name


def test_the_queues_and_reliability_settings_match_the_architecture() -> None:
    assert set(ALL_QUEUES) == {"control", "social", "email", "sms", "push"}
    assert set(SEND_QUEUES) < set(ALL_QUEUES)
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_connection_max_retries is None
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > app.conf.task_time_limit


def test_a_task_sent_to_one_queue_lands_in_that_queue_only() -> None:
    from continuity.tasks import heartbeat

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues:
            queue.bind(channel).purge()
        heartbeat.apply_async(kwargs={"name": "routing-probe"}, queue="email")
        depths = {
            q.name: q.bind(channel).queue_declare().message_count for q in app.conf.task_queues
        }
        for queue in app.conf.task_queues:
            queue.bind(channel).purge()
    assert depths == {"control": 0, "social": 0, "email": 1, "sms": 0, "push": 0}
