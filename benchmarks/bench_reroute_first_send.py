"""reroute.first_send_s and reroute.worker_rss_mb on the 1,000,000-contact audience.

The audience is bench_reroute_plan's: 1,000,000 contacts over 10 workspaces; each workspace has
one campaign due on Instagram whose audience is all its contacts, so the one outage reroutes
every workspace (each under its own rules) and the whole million is planned and sent.
An Alertmanager "instagram down" alert goes through the real webhook view (in this process);
a real `celery worker` process (all queues, concurrency 2) plans and sends against the sandbox
SendGrid and Twilio fakes. first_send_s runs from the webhook's 2xx to the first request a fake
receives; worker_rss_mb is the worker's peak resident memory (main process and its pool children,
VmHWM) while it plans the whole audience and sends, up to a time cap reported with the figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchmarks._common import (
    bench_database_prepare,
    emit,
    popen_tied,
    process_group_kill,
    setup_django,
    sized,
    worker_production_env,
)
from benchmarks.bench_reroute_plan import BENCH_DB, _fill_audience, _workspaces_ensure

ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/7"
TOKEN = "bench-alertmanager-token"  # noqa: S105 - a throwaway benchmark database


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of a process and its children, in MB (0 when it has gone)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        status = Path(f"/proc/{one}/status")
        if not status.exists():
            continue
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                total = max(total, int(line.split()[1]))
    return round(total / 1024, 1)


def main() -> None:
    n = sized(full=1_000_000, small=5_000)
    cap_s = sized(full=180, small=20)
    os.environ["REDIS_URL"] = REDIS
    url = bench_database_prepare(BENCH_DB)
    setup_django()
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from campaigns.models import Campaign, CampaignStatus, Reroute, SocialAccount, SocialPost
    from continuity.celery import app
    from delivery.models import Delivery, Message
    from outages.credentials import credential_issue
    from outages.models import MonitorSource, OutageWindow, SourceKind
    from sandbox.sendgrid import SendGridFake
    from sandbox.twilio import TwilioFake

    workspace_ids = _workspaces_ensure()
    _fill_audience(n, workspace_ids)
    tables = [
        t
        for t in connection.introspection.table_names()
        if t.startswith(("delivery_", "campaigns_", "outages_"))
    ]
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    with app.connection_for_write() as conn:
        for q in app.conf.task_queues:
            q.bind(conn.default_channel).purge()
    source = MonitorSource.objects.create(
        name="bench",
        slug="bench-am",
        kind=SourceKind.ALERTMANAGER,
        mapping_rules=[{"match": "labels.service", "equals": "instagram", "network": "instagram"}],
    )
    credential_issue(source=source, secret=TOKEN)
    for workspace_id in workspace_ids:
        message = Message.objects.create(
            workspace_id=workspace_id,
            name="bench",
            email_subject="Hi {{ first_name }}",
            email_text="Sale",
            sms_text="Sale",
        )
        campaign = Campaign.objects.create(
            workspace_id=workspace_id,
            name="bench",
            status=CampaignStatus.SCHEDULED,
            scheduled_at=timezone.now() - timedelta(minutes=1),
            fallback_channels=["email", "sms"],
            message=message,
        )
        account = SocialAccount.objects.create(
            workspace_id=workspace_id, network="instagram", display_name="bench"
        )
        SocialPost.objects.create(
            workspace_id=workspace_id, campaign=campaign, account=account, network="instagram"
        )

    class Stamped:
        """Keeps only the time of the first request a fake received (bodies are not kept)."""

        first_at: float | None = None

        def record(self, request: object) -> bool:
            if self.first_at is None:
                self.first_at = time.time()
            return False

    class StampedSendGrid(Stamped, SendGridFake):
        pass

    class StampedTwilio(Stamped, TwilioFake):
        pass

    with (
        StampedSendGrid(keep_bodies=False) as sendgrid,
        StampedTwilio(send_callbacks=False, keep_bodies=False) as twilio,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": REDIS,
            "DJANGO_SETTINGS_MODULE": "continuity.settings_test",
            "SENDGRID_API_URL": f"{sendgrid.url}/v3/",
            "SENDGRID_API_KEY": sendgrid.api_key,
            "TWILIO_API_BASE_URL": twilio.url,
            "DELIVERY_SMS_RATE_PER_S": "5000",
            "REROUTE_QUIET_HOURS_SMS": "",
            "REROUTE_FREQUENCY_CAP_PER_DAY": "0",
            "LOG_LEVEL": "warning",
            **worker_production_env(),
        }
        worker = popen_tied(
            [sys.executable, "-m", "celery", "-A", "continuity", "worker", "--concurrency", "2",
             "--queues", "control,email,sms", "--without-gossip", "--without-mingle",
             "--loglevel", "INFO"],
            cwd=ROOT, env={**env, "LOG_LEVEL": "info"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        drain: subprocess.Popen[str] | None = None
        try:
            assert worker.stdout is not None
            for line in worker.stdout:
                if " ready." in line:
                    break
            drain = popen_tied(["cat"], stdin=worker.stdout, stdout=subprocess.DEVNULL)
            body = (ROOT / "docs" / "demo" / "alertmanager-instagram-firing.json").read_bytes()
            response = Client(HTTP_HOST="127.0.0.1").post(
                "/hooks/monitors/bench-am/",
                data=body,
                content_type="application/json",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            answered = time.time()
            assert response.status_code == 200, response.content
            assert OutageWindow.objects.filter(state="open").exists()
            first_at = None
            rss = 0.0
            deadline = time.monotonic() + cap_s
            while time.monotonic() < deadline:
                rss = max(rss, _peak_rss_mb(worker.pid))
                if first_at is None:
                    stamps = [f.first_at for f in (sendgrid, twilio) if f.first_at is not None]
                    first_at = min(stamps) if stamps else None
                planning = Reroute.objects.filter(status="planning").exists()
                busy = Delivery.objects.filter(status__in=["planned", "queued", "sending"]).exists()
                if first_at is not None and not planning and not busy:
                    break
                time.sleep(0.2)
            elapsed = time.time() - answered
            sent = Delivery.objects.filter(status="sent").count()
            planned = Delivery.objects.count()
        finally:
            process_group_kill(worker, timeout=60)
            if drain is not None:
                process_group_kill(drain)
    emit(
        "reroute.first_send_s",
        (first_at - answered) if first_at else float("nan"),
        "s",
        target="from the webhook's 2xx to the first provider request, 1,000,000 audience: < 2 s",
        contacts=n,
        workspaces=len(workspace_ids),
    )
    emit(
        "reroute.worker_rss_mb",
        rss,
        "MB",
        target="worker peak RSS under 150 MB while planning and sending that audience",
        contacts=n,
        planned=planned,
        sent=sent,
        seconds_observed=round(elapsed, 1),
        time_cap_s=cap_s,
    )


if __name__ == "__main__":
    main()
