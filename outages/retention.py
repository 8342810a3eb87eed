"""The outages app's kinds of record that expire (continuity/retention.py): monitor webhook
receipts and the replay guard's delivery ids. Install-wide, like monitors: one period for all.

Refused receipts have tighter caps of their own (outages/receipts.py), enforced by their own beat
task: those bound what an anonymous sender can make us keep, not how long we keep our records.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from continuity import retention_rules as rules
from continuity.retention import RetentionKind, retention_kind_register

retention_kind_register(
    RetentionKind(
        key=rules.MONITOR_RECEIPTS,
        label=_("Monitor webhook receipts"),
        table="outages_webhookreceipt",
        age_column="created_at",
        what=_(
            "Requests from uptime monitors (Alertmanager, Grafana, ...) saying a network is down."
        ),
        minimum_reason=_("explaining why an outage was declared"),
        per_workspace=False,
        personal_data=False,
    )
)

retention_kind_register(
    RetentionKind(
        key=rules.MONITOR_REPLAY_IDS,
        label=_("Monitor delivery ids"),
        table="outages_deliveryseen",
        age_column="created_at",
        what=_("Ids of monitor deliveries already processed, so a replayed request is refused."),
        minimum_reason=_("they must outlive the signature tolerance to refuse replays"),
        per_workspace=False,
        personal_data=False,
    )
)
