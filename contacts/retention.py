"""The contacts app's kind of record that expires: consent evidence (continuity/retention.py); and
its part of the records of processing: the push services its contacts' browsers use.

Evidence is kept while the consent it proves stands, and for the period after: an event goes only
when a newer event about the same contact, channel and purpose (a new grant, a withdrawal, a
suppression) is itself older than the period, or when the contact was erased longer ago than the
period. The newest event of each consent is never deleted, so the current state always has its
proof; nor is an erasure's own record.
"""

from __future__ import annotations

from django.db import connection
from django.utils.translation import gettext_lazy as _

from contacts.models import Channel
from continuity import retention_rules as rules
from continuity.models import Workspace
from continuity.records import US_TRANSFER, Contribution, Processor, records_contributor_register
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


# A suppression lifted (the person opted back in, a bounce cleared, an erasure) protects no one any
# more; its row is the history of an opt-out we honoured. It goes once it has been lifted for the
# period; an active one never expires. Ids grow with created_at, not lifted_at: the age column is
# created_at (always older than lifted_at), and the lifting time decides.
retention_kind_register(
    RetentionKind(
        key=rules.LIFTED_SUPPRESSIONS,
        label=_("Lifted suppressions"),
        table="contacts_suppression",
        age_column="created_at",
        what=_(
            "Opt-outs, bounces and complaints that no longer apply (lifted by a new consent, by "
            "staff, or by an erasure), with their reason and detail. Active ones never expire."
        ),
        minimum_reason=_(
            "proof that an opt-out was honoured, for the limitation period of fines and claims"
        ),
        where="AND NOT t.active AND t.lifted_at IS NOT NULL AND t.lifted_at < {cutoff}",
    )
)


# An import's record and its error report: the refused rows (personal data, as typed in the file)
# go with their run. The run's age is when it started.
retention_kind_register(
    RetentionKind(
        key=rules.IMPORT_REPORTS,
        label=_("Import error reports"),
        table="contacts_importrun",
        age_column="started_at",
        what=_(
            "Each contact import (command or admin) with its totals and the rows it refused, "
            "with their reason and original values, for fixing the file and importing again."
        ),
        minimum_reason=_("a day to read the report of an import made that day"),
        dependents=("contacts_importrefusedrow.run_id",),
    )
)


# A file uploaded to the admin import and never confirmed (confirming or a refusing preview
# removes it at once; contacts/import_uploads.py).
retention_kind_register(
    RetentionKind(
        key=rules.IMPORT_UPLOADS,
        label=_("Unconfirmed import uploads"),
        table="contacts_importupload",
        age_column="created_at",
        what=_(
            "Files uploaded to the admin import whose preview was never confirmed, as uploaded."
        ),
        minimum_reason=_("a day to confirm an import previewed that day"),
    )
)


# The push services seen in the workspace's subscriptions, by their endpoints' hosts.
_PUSH_VENDORS = (
    ("fcm.googleapis.com", "Google Firebase Cloud Messaging"),
    (".googleapis.com", "Google"),
    ("push.services.mozilla.com", "Mozilla Push Service"),
    (".notify.windows.com", "Microsoft Windows Push Notification Services"),
    ("push.apple.com", "Apple Push Notification service"),
)
_PUSH_HOSTS_SQL = """
SELECT DISTINCT lower(split_part(split_part(endpoint, '://', 2), '/', 1))
FROM contacts_pushsubscription WHERE workspace_id = %s AND active LIMIT 50
"""


def _push_vendor(host: str) -> str:
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    for suffix, vendor in _PUSH_VENDORS:
        if bare == suffix.lstrip(".") or bare.endswith(suffix):
            return vendor
    return bare


def _push_services(workspace: Workspace) -> Contribution:
    with connection.cursor() as cursor:
        cursor.execute(_PUSH_HOSTS_SQL, [workspace.pk])
        vendors = sorted({_push_vendor(row[0]) for row in cursor.fetchall() if row[0]})
    return Contribution(
        processors=[
            Processor(
                name=vendor,
                service=_("Web push delivery (the contact's browser vendor)"),
                channel=Channel.PUSH,
                data=_(
                    "Encrypted notification (the service cannot read it), subscription endpoint"
                ),
                account=_("chosen by the contact's browser"),
                transfer=US_TRANSFER,
            )
            for vendor in vendors
        ]
    )


records_contributor_register(_push_services)
