"""The campaigns app's kind of record that expires (continuity/retention.py): the log of calls to
the social networks (publishes and health probes); and its part of the records of processing: the
social networks the workspace publishes to."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from campaigns.models import SocialAccount, SocialNetwork
from continuity import retention_rules as rules
from continuity.models import Workspace
from continuity.records import (
    WORKSPACE_ACCOUNT,
    Contribution,
    Processor,
    records_contributor_register,
)
from continuity.retention import RetentionKind, retention_kind_register

retention_kind_register(
    RetentionKind(
        key=rules.PUBLISH_ATTEMPTS,
        label=_("Social publish attempts"),
        table="campaigns_publishattempt",
        age_column="at",
        what=_("Each call to a social network (a post or a health probe) and how it ended."),
        minimum_reason=_("outage self-detection reads the recent attempts"),
        personal_data=False,
    )
)


_OPERATORS = {
    SocialNetwork.FACEBOOK: "Meta Platforms",
    SocialNetwork.INSTAGRAM: "Meta Platforms",
    SocialNetwork.WHATSAPP: "WhatsApp (Meta Platforms)",
    SocialNetwork.X: "X Corp.",
}


def _social_accounts(workspace: Workspace) -> Contribution:
    networks = sorted(
        set(
            SocialAccount.objects.for_workspace(workspace)
            .filter(active=True)
            .values_list("network", flat=True)
        )
    )
    return Contribution(
        channels=[str(n) for n in networks],
        processors=[
            Processor(
                name=_OPERATORS.get(network, network),
                service=_("Publishing the workspace's posts"),
                channel=network,
                data=_("The workspace's posts and account tokens; no contact data"),
                account=WORKSPACE_ACCOUNT,
                transfer="",
            )
            for network in networks
        ],
    )


records_contributor_register(_social_accounts)
