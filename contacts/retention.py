"""The contacts app's kind of record that expires: consent evidence (continuity/retention.py).

Evidence is kept while the consent it proves stands, and for the period after: an event goes only
when a newer event about the same contact, channel and purpose (a new grant, a withdrawal, a
suppression) is itself older than the period, or when the contact was erased longer ago than the
period. The newest event of each consent is never deleted, so the current state always has its
proof; nor is an erasure's own record.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from continuity import retention_rules as rules
from continuity.retention import RetentionKind, retention_kind_register

# {cutoff} is the row's cutoff; the newer event must be older than it both as it happened and as
# we recorded it (an import can record old evidence today: it counts from today).
_SUPERSEDED = """
AND t.action <> 'erase'
AND (
    EXISTS (
        SELECT 1 FROM contacts_consentevent n
        WHERE n.contact_id = t.contact_id AND n.channel = t.channel AND n.purpose = t.purpose
          AND (n.occurred_at > t.occurred_at OR (n.occurred_at = t.occurred_at AND n.id > t.id))
          AND n.occurred_at < {cutoff} AND n.recorded_at < {cutoff}
    )
    OR EXISTS (
        SELECT 1 FROM contacts_contact c WHERE c.id = t.contact_id AND c.erased_at < {cutoff}
    )
)
"""

retention_kind_register(
    RetentionKind(
        key=rules.CONSENT_EVIDENCE,
        label=_("Consent evidence"),
        table="contacts_consentevent",
        age_column="recorded_at",
        what=_(
            "Each consent change with its evidence (source, time, IP address, browser, consent "
            "text version, lawful basis). Kept while the consent stands and for the period "
            "after it was replaced or withdrawn."
        ),
        minimum_reason=_(
            "proof of consent (GDPR Art. 7(1)) for the limitation period of fines and claims"
        ),
        where=_SUPERSEDED,
    )
)
