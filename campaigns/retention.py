"""The campaigns app's kind of record that expires (continuity/retention.py): the log of calls to
the social networks (publishes and health probes)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from continuity import retention_rules as rules
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
