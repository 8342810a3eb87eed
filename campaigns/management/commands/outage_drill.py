from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from campaigns.drill import outage_drill
from continuity.models import Workspace
from outages.networks import network_is_known


class Command(BaseCommand):
    help = "What would happen if NETWORK went down now: counts per channel, exclusions, SMS cost."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("network", help="facebook, instagram, whatsapp, x, ...")
        parser.add_argument(
            "--campaign", type=int, action="append", dest="campaigns", help="repeatable"
        )
        parser.add_argument(
            "--workspace",
            metavar="SLUG",
            default="",
            help="drill this workspace's campaigns only (default: every workspace's)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON document")

    def handle(self, *args: Any, network: str, campaigns: list[int] | None, **opts: Any) -> None:
        if not network_is_known(network):
            raise CommandError(f"unknown network {network!r}")
        workspace = None
        if opts["workspace"]:
            workspace = Workspace.objects.filter(slug=opts["workspace"]).first()
            if workspace is None:
                raise CommandError(f"unknown workspace {opts['workspace']!r}")
        report = outage_drill(network=network, workspace=workspace, campaign_ids=campaigns)
        if opts["json"]:
            self.stdout.write(json.dumps(drill_as_dict(report), indent=2))
            return
        if not report.campaigns:
            self.stdout.write(
                f"No scheduled campaign publishes to {network}: nothing would change."
            )
            return
        for drill in report.campaigns:
            self.stdout.write(
                f"#{drill.campaign_id} {drill.campaign} [{drill.workspace}] (policy {drill.policy})"
            )
            if drill.problem:
                self.stdout.write(f"    {drill.problem}")
                continue
            self.stdout.write(f"    audience {drill.contacts}, would send {drill.planned or '{}'}")
            self.stdout.write(f"    left out {drill.exclusions or '{}'}")
            self.stdout.write(f"    SMS segments {drill.sms_segments}, cost ~{drill.sms_cost}")
        self.stdout.write(
            f"TOTAL would send {report.planned}, left out {report.exclusions}, "
            f"SMS segments {report.sms_segments}, cost ~{report.sms_cost}"
        )


def drill_as_dict(report: Any) -> dict[str, Any]:
    return {
        "network": report.network,
        "planned": report.planned,
        "exclusions": report.exclusions,
        "sms_segments": report.sms_segments,
        "sms_cost": report.sms_cost,
        "campaigns": [vars(d) for d in report.campaigns],
    }
