"""The kinds of record that expire, their legal (or operational) minimum and install default, in
days. Plain numbers, importable from settings: the settings block reads each default from the
environment and refuses one below its minimum at start. Why each minimum is what it is: the kinds'
registrations (``<app>/retention.py``) and docs/privacy.md, "Retention and records".

The minimums are code, not configuration: lowering one is a reviewed change to this file.
"""

from __future__ import annotations

PROVIDER_RECEIPTS = "provider_receipts"
DELIVERIES = "deliveries"
DELIVERY_EVENTS = "delivery_events"
CONSENT_EVIDENCE = "consent_evidence"
AUDIT_EVENTS = "audit_events"
MONITOR_RECEIPTS = "monitor_receipts"
MONITOR_REPLAY_IDS = "monitor_replay_ids"
PUBLISH_ATTEMPTS = "publish_attempts"
LOGIN_ATTEMPTS = "login_attempts"
LIFTED_SUPPRESSIONS = "lifted_suppressions"
IMPORT_REPORTS = "import_reports"
IMPORT_UPLOADS = "import_uploads"

# Five years: the limitation period for administrative fines (Italy, Law 689/1981 art. 28) and
# for claims in tort (Italian Civil Code art. 2947), within which consent and accountability
# records may have to be shown.
_LIMITATION_DAYS = 5 * 365 + 1

MINIMUM_DAYS: dict[str, int] = {
    PROVIDER_RECEIPTS: 7,
    DELIVERIES: 31,
    DELIVERY_EVENTS: 31,
    CONSENT_EVIDENCE: _LIMITATION_DAYS,
    AUDIT_EVENTS: _LIMITATION_DAYS,
    MONITOR_RECEIPTS: 1,
    MONITOR_REPLAY_IDS: 1,
    PUBLISH_ATTEMPTS: 7,
    # A day covers any ordinary cool-off; the kind itself never deletes inside AXES_COOLOFF_TIME
    # either (continuity/retention.py), since those rows are the lockout counter.
    LOGIN_ATTEMPTS: 1,
    # A lifted opt-out or bounce is consent history: proof that we honoured it, for as long as
    # the consent evidence it belongs with.
    LIFTED_SUPPRESSIONS: _LIMITATION_DAYS,
    # Operational copies, not records: an import's refused rows are for fixing the file, an
    # upload for confirming its preview. A day lets either be used the day it was made.
    IMPORT_REPORTS: 1,
    IMPORT_UPLOADS: 1,
}

DEFAULT_DAYS: dict[str, int] = {
    PROVIDER_RECEIPTS: 30,
    # Thirteen months: a year-on-year comparison of the same campaign still finds last year's.
    DELIVERIES: 396,
    DELIVERY_EVENTS: 180,
    # Six years: the longest common limitation period for contract claims in the EU and UK
    # (England and Wales, Limitation Act 1980 s.5); set a longer one where yours is longer.
    CONSENT_EVIDENCE: 6 * 365 + 2,
    AUDIT_EVENTS: 6 * 365 + 2,
    MONITOR_RECEIPTS: 30,
    MONITOR_REPLAY_IDS: 30,
    PUBLISH_ATTEMPTS: 90,
    LOGIN_ATTEMPTS: 30,
    LIFTED_SUPPRESSIONS: 6 * 365 + 2,
    # A month to fix and import again what a file's rows got wrong.
    IMPORT_REPORTS: 30,
    IMPORT_UPLOADS: 1,
}

# The database refuses to delete an audit event younger than this (the append-only trigger,
# continuity migration 0003): a bug in the retention code cannot cut into the minimum.
AUDIT_TRIGGER_MINIMUM_DAYS = MINIMUM_DAYS[AUDIT_EVENTS]
