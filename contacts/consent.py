"""The only way consent and suppressions change. Each function is one transaction that writes the
current state and its evidence row together; nothing else writes Consent, ConsentEvent or
Suppression.

Every row written here carries the workspace of the contact it is about: a function given a
contact takes ``contact.workspace_id``; the bulk path checks that its contacts belong to the
workspace it was given (or reads their workspaces when given none)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.errors import (
    ConsentEvidenceMissing,
    ContactErased,
    LawfulBasisRefused,
    NoPendingOptIn,
)
from contacts.models import (
    CHANNELS,
    CONSENT_SOURCES,
    LAWFUL_BASES,
    PURPOSES,
    SUPPRESSION_REASONS,
    Channel,
    Consent,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    LawfulBasis,
    Purpose,
    Suppression,
    consent_bit,
)
from continuity.models import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """Who/what/when behind a consent change. `source` is mandatory for any grant."""

    source: str
    occurred_at: datetime | None = None
    ip: str | None = None
    user_agent: str = ""
    consent_text_version: str = ""
    recorded_by: str = ""
    source_detail: str = ""
    note: str = ""


@dataclass(frozen=True)
class ConsentChange:
    """One row of a bulk consent write (imports, bulk API)."""

    contact_id: int
    channel: str
    purpose: str
    state: str
    evidence: Evidence = field(default_factory=lambda: Evidence(source=""))


def _check_evidence(evidence: Evidence, *, channel: str, purpose: str, grant: bool) -> None:
    if not evidence.source:
        sources = ", ".join(ConsentSource.values)
        raise ConsentEvidenceMissing(
            _("a consent grant needs an evidence source (one of %(sources)s)")
            % {"sources": sources}
            if grant
            else _("a consent change needs an evidence source (one of %(sources)s)")
            % {"sources": sources}
        )
    if evidence.source not in CONSENT_SOURCES:
        raise ConsentEvidenceMissing(
            _("unknown evidence source %(source)r: use one of %(sources)s")
            % {"source": evidence.source, "sources": ", ".join(ConsentSource.values)}
        )
    if channel not in CHANNELS:
        raise ConsentEvidenceMissing(_("unknown channel %(channel)r") % {"channel": channel})
    if purpose not in PURPOSES:
        raise ConsentEvidenceMissing(_("unknown purpose %(purpose)r") % {"purpose": purpose})


def _event(
    *,
    workspace_id: int,
    contact_id: int,
    channel: str,
    purpose: str,
    action: str,
    state: str,
    evidence: Evidence,
    now: datetime,
    lawful_basis: str = "",
) -> ConsentEvent:
    return ConsentEvent(
        lawful_basis=lawful_basis,
        workspace_id=workspace_id,
        contact_id=contact_id,
        channel=channel,
        purpose=purpose,
        action=action,
        state=state,
        source=evidence.source,
        source_detail=evidence.source_detail[:500],
        occurred_at=evidence.occurred_at or now,
        ip=evidence.ip or None,
        user_agent=evidence.user_agent[:500],
        consent_text_version=evidence.consent_text_version[:100],
        recorded_by=evidence.recorded_by[:150],
        note=evidence.note,
    )


def _set_state(
    *,
    contact: Contact,
    channel: str,
    purpose: str,
    state: str,
    action: str,
    evidence: Evidence,
    lawful_basis: str | None = None,
) -> Consent:
    """``lawful_basis``: the basis a grant stands on; None keeps the row's (a withdrawal, a
    pending request) or, for a new row, consent."""
    if contact.erased_at is not None:
        raise ContactErased(
            _("contact #%(id)s was erased; its consent cannot change") % {"id": contact.pk}
        )
    now = timezone.now()
    basis = {"lawful_basis": lawful_basis} if lawful_basis is not None else {}
    with transaction.atomic():
        consent, _created = Consent.objects.update_or_create(
            contact=contact,
            channel=channel,
            purpose=purpose,
            defaults={"state": state, "updated_at": now, **basis},
            create_defaults={
                "state": state,
                "updated_at": now,
                "workspace_id": contact.workspace_id,
                **basis,
            },
        )
        _event(
            workspace_id=contact.workspace_id,
            contact_id=contact.pk,
            channel=channel,
            purpose=purpose,
            action=action,
            state=state,
            evidence=evidence,
            now=now,
            lawful_basis=consent.lawful_basis,
        ).save()
        sendable_refresh(contact_ids=[contact.pk])
    return consent


def sendable_refresh(*, contact_ids: Iterable[int]) -> None:
    """Recompute Contact.sendable from the consent and suppression rows of these contacts.
    Called inside every change's transaction, and wherever a contact's customer_since changes:
    a grant on legitimate interest (the soft opt-in) lets us send only while the contact is
    marked a customer, so clearing the mark stops those messages (setting it again resumes
    them: the person never said no). Writes only rows whose mask changes."""
    ids = sorted(set(contact_ids))
    if not ids:
        return
    masks = dict.fromkeys(ids, 0)
    suppressed = set(
        Suppression.objects.filter(contact_id__in=ids, active=True).values_list(
            "contact_id", "channel"
        )
    )
    granted = Consent.objects.filter(contact_id__in=ids, state=ConsentState.GRANTED).filter(
        Q(lawful_basis=LawfulBasis.CONSENT) | Q(contact__customer_since__isnull=False)
    )
    for contact_id, channel, purpose in granted.values_list("contact_id", "channel", "purpose"):
        if (contact_id, channel) not in suppressed:
            masks[contact_id] |= consent_bit(channel, purpose)
    # Only rows whose mask changes are written, one UPDATE per distinct mask: a fresh import,
    # whose contacts got their mask at insert, writes nothing here.
    changed: dict[int, list[int]] = {}
    for contact_id, sendable, erased_at in Contact.objects.filter(pk__in=ids).values_list(
        "pk", "sendable", "erased_at"
    ):
        mask = 0 if erased_at is not None else masks[contact_id]
        if sendable != mask:
            changed.setdefault(mask, []).append(contact_id)
    for mask, group in changed.items():
        Contact.objects.filter(pk__in=group).update(sendable=mask)


def consent_grant(
    *,
    contact: Contact,
    channel: str,
    purpose: str,
    evidence: Evidence,
    lawful_basis: str = LawfulBasis.CONSENT,
) -> Consent:
    """Record consent for (channel, purpose); refused without an evidence source. With
    ``lawful_basis`` legitimate interest, the soft opt-in's rules apply (lawful_basis_check)."""
    _check_evidence(evidence, channel=channel, purpose=purpose, grant=True)
    with transaction.atomic():
        if lawful_basis != LawfulBasis.CONSENT:
            # The row is locked while the rules read it: a withdrawal cannot slip in between.
            current = (
                Consent.objects.select_for_update()
                .filter(contact=contact, channel=channel, purpose=purpose)
                .first()
            )
            lawful_basis_check(
                contact=contact,
                channel=channel,
                purpose=purpose,
                lawful_basis=lawful_basis,
                current=current,
            )
        return _set_state(
            contact=contact,
            channel=channel,
            purpose=purpose,
            state=ConsentState.GRANTED,
            action=ConsentAction.GRANT,
            evidence=evidence,
            lawful_basis=lawful_basis,
        )


def contact_customer_since_set(*, contact: Contact, since: date | None) -> None:
    """Record (or clear) the customer relationship the soft opt-in rests on."""
    if contact.erased_at is not None:
        raise ContactErased(_("contact #%(id)s was erased") % {"id": contact.pk})
    with transaction.atomic():
        Contact.objects.filter(pk=contact.pk).update(customer_since=since)
        contact.customer_since = since
        sendable_refresh(contact_ids=[contact.pk])


SOFT_OPT_IN_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS})


def lawful_basis_check(
    *,
    contact: Contact,
    channel: str,
    purpose: str,
    lawful_basis: str,
    current: Consent | None,
) -> None:
    """The soft opt-in (ePrivacy Directive Art. 13(2)): legitimate interest instead of consent
    only for email or SMS marketing, only to an existing customer, and never after the person
    said no. (Similar products, and the opt-out offered when their details were taken, are the
    marketer's to keep to; every message sent under it carries an opt-out, see docs/privacy.md.)"""
    if lawful_basis not in LAWFUL_BASES:
        raise LawfulBasisRefused(
            _("unknown lawful basis %(basis)r: use one of %(bases)s")
            % {"basis": lawful_basis, "bases": ", ".join(LawfulBasis.values)}
        )
    if lawful_basis == LawfulBasis.CONSENT:
        return
    if purpose != Purpose.MARKETING:
        raise LawfulBasisRefused(
            _(
                "legitimate interest (soft opt-in) is for marketing; record consent for "
                "%(purpose)s messages"
            )
            % {"purpose": purpose}
        )
    if channel not in SOFT_OPT_IN_CHANNELS:
        raise LawfulBasisRefused(
            _(
                "%(channel)s marketing needs the person's consent: legitimate interest (soft "
                "opt-in) covers only email and SMS"
            )
            % {"channel": channel}
        )
    if contact.customer_since is None:
        raise LawfulBasisRefused(
            _(
                "legitimate interest (soft opt-in) is only for existing customers: set the "
                "contact's customer_since first"
            )
        )
    if current is not None and current.state == ConsentState.REVOKED:
        raise LawfulBasisRefused(
            _(
                "the contact opted out of %(channel)s %(purpose)s messages; only their own "
                "consent can start them again"
            )
            % {"channel": channel, "purpose": purpose}
        )


def consent_revoke(*, contact: Contact, channel: str, purpose: str, evidence: Evidence) -> Consent:
    """Record a withdrawal. Revoking what was never granted still records the explicit no."""
    _check_evidence(evidence, channel=channel, purpose=purpose, grant=False)
    return _set_state(
        contact=contact,
        channel=channel,
        purpose=purpose,
        state=ConsentState.REVOKED,
        action=ConsentAction.REVOKE,
        evidence=evidence,
    )


def consent_request_double_opt_in(
    *, contact: Contact, evidence: Evidence, purpose: str = Purpose.MARKETING
) -> Consent:
    """Email consent becomes pending and a signed, expiring confirmation link is mailed through
    the email channel (a Delivery row, sent by a task on commit). Already granted stays granted
    (no mail)."""
    _check_evidence(evidence, channel=Channel.EMAIL, purpose=purpose, grant=True)
    if not contact.email:
        raise ConsentEvidenceMissing(
            _("contact #%(id)s has no email address to confirm") % {"id": contact.pk}
        )
    current = Consent.objects.filter(
        contact=contact, channel=Channel.EMAIL, purpose=purpose
    ).first()
    if current is not None and current.state == ConsentState.GRANTED:
        return current
    from contacts.link_mail import KIND_DOUBLE_OPT_IN, system_mail_enqueue

    # The pending state and the confirmation's Delivery row commit together: a person left
    # pending always has a mail beside it whose status says what became of it.
    with transaction.atomic():
        consent = _set_state(
            contact=contact,
            channel=Channel.EMAIL,
            purpose=purpose,
            state=ConsentState.PENDING,
            action=ConsentAction.REQUEST,
            evidence=evidence,
        )
        system_mail_enqueue(
            contact=contact, kind=KIND_DOUBLE_OPT_IN, address=contact.email, purpose=purpose
        )
    return consent


def consent_confirm(*, contact: Contact, purpose: str, evidence: Evidence) -> Consent:
    """The contact opened the confirmation link: pending becomes granted."""
    _check_evidence(evidence, channel=Channel.EMAIL, purpose=purpose, grant=True)
    with transaction.atomic():
        current = (
            Consent.objects.select_for_update()
            .filter(contact=contact, channel=Channel.EMAIL, purpose=purpose)
            .first()
        )
        if current is not None and current.state == ConsentState.GRANTED:
            return current
        if current is None or current.state != ConsentState.PENDING:
            raise NoPendingOptIn(
                _("there is no pending subscription to confirm (it was withdrawn or never asked)")
            )
        return _set_state(
            contact=contact,
            channel=Channel.EMAIL,
            purpose=purpose,
            state=ConsentState.GRANTED,
            action=ConsentAction.CONFIRM,
            evidence=evidence,
        )


def consents_apply_bulk(
    *,
    changes: Sequence[ConsentChange],
    workspace: Workspace | int | None = None,
    fresh_contact_ids: frozenset[int] = frozenset(),
) -> int:
    """Set-based consent writes for imports and the bulk API: one upsert of the states and one
    insert of the events. Rows whose state would not change write nothing. Returns rows changed.
    `workspace`: the workspace every contact belongs to (checked: one of another workspace is a
    ValueError); without it each contact's own workspace is read (one query by id).
    `fresh_contact_ids`: contacts inserted in this transaction with Contact.sendable already
    computed from these very changes (contacts.upsert does); their mask is not re-derived."""
    if not changes:
        return 0
    for change in changes:
        _check_evidence(
            change.evidence,
            channel=change.channel,
            purpose=change.purpose,
            grant=change.state == ConsentState.GRANTED,
        )
    now = timezone.now()
    # The last word per key wins, as if the rows had been applied one after the other.
    latest: dict[tuple[int, str, str], ConsentChange] = {}
    for change in changes:
        latest[(change.contact_id, change.channel, change.purpose)] = change
    return _apply_bulk(
        list(latest.values()),
        now=now,
        fresh=fresh_contact_ids,
        workspace_id=workspace if isinstance(workspace, int | None) else workspace.pk,
    )


_ACTION_FOR_STATE: dict[str, str] = {
    ConsentState.GRANTED: ConsentAction.GRANT,
    ConsentState.REVOKED: ConsentAction.REVOKE,
    ConsentState.PENDING: ConsentAction.REQUEST,
}

# The batch is COPYed into a session temp table, then one statement upserts the states that
# actually change (skipping erased contacts) and writes one evidence row for each of exactly
# those. COPY avoids dumping a dozen large arrays as SQL literals.
_INPUT_TABLE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS contacts_consent_input (
    workspace_id bigint, contact_id bigint, channel varchar(16), purpose varchar(16),
    state varchar(16),
    action varchar(16), source varchar(32), detail varchar(500), occurred timestamptz,
    ip inet, agent varchar(500), version varchar(100), recorded_by varchar(150), note text
) ON COMMIT DELETE ROWS
"""
_INPUT_COLUMNS = (
    "workspace_id, contact_id, channel, purpose, state, action, source, detail, occurred, ip, "
    "agent, version, recorded_by, note"
)
_BULK_SQL = """
WITH input AS (SELECT * FROM contacts_consent_input),
changed AS (
    INSERT INTO contacts_consent (workspace_id, contact_id, channel, purpose, state, updated_at)
    SELECT workspace_id, contact_id, channel, purpose, state, %(now)s FROM input
    ON CONFLICT (contact_id, channel, purpose) DO UPDATE
        SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at,
            -- A grant by import or the bulk API is consent; a withdrawal keeps the basis it ends.
            lawful_basis = CASE WHEN EXCLUDED.state = 'granted' THEN EXCLUDED.lawful_basis
                                ELSE contacts_consent.lawful_basis END
        WHERE contacts_consent.state IS DISTINCT FROM EXCLUDED.state
    RETURNING contact_id, channel, purpose
)
INSERT INTO contacts_consentevent
    (workspace_id, contact_id, channel, purpose, action, state, source, source_detail,
     occurred_at, recorded_at, ip, user_agent, consent_text_version, recorded_by, note,
     subject_hash)
SELECT i.workspace_id, i.contact_id, i.channel, i.purpose, i.action, i.state, i.source,
       i.detail, i.occurred, %(now)s, i.ip, i.agent, i.version, i.recorded_by, i.note, ''
FROM changed ch
JOIN input i USING (contact_id, channel, purpose)
RETURNING contact_id
"""


def _contact_workspaces(
    ids: set[int], *, fresh: frozenset[int], workspace_id: int | None
) -> tuple[dict[int, int] | int, set[int]]:
    """The workspace of each contact (or the one they all share) and the erased ones among them.
    Filters written as id IN (...) never join contacts: a table that just grew by a bulk load
    has stale statistics, and a join planned on them turns into a nested loop per batch."""
    if workspace_id is None:
        if fresh:
            raise ValueError("contacts inserted in this transaction need their workspace named")
        rows = Contact.objects.filter(pk__in=ids).values_list("pk", "workspace_id", "erased_at")
        return {pk: ws for pk, ws, _ in rows}, {pk for pk, _, erased in rows if erased}
    # Only the exceptions come back (erased, or a caller's bug), so a batch reads few rows.
    rows = (
        Contact.objects.filter(pk__in=ids - fresh)
        .filter(Q(erased_at__isnull=False) | ~Q(workspace_id=workspace_id))
        .values_list("pk", "workspace_id", "erased_at")
    )
    foreign = sorted(pk for pk, ws, _ in rows if ws != workspace_id)
    if foreign:
        raise ValueError(f"contacts {foreign[:10]} are not in workspace #{workspace_id}")
    return workspace_id, {pk for pk, _, erased in rows if erased}


def _apply_bulk(
    todo: list[ConsentChange], *, now: datetime, fresh: frozenset[int], workspace_id: int | None
) -> int:
    ids = {c.contact_id for c in todo}
    workspaces, erased = _contact_workspaces(ids, fresh=fresh, workspace_id=workspace_id)
    if isinstance(workspaces, dict):
        # Without a named workspace, an id that no longer exists has no row to attach to.
        todo = [c for c in todo if c.contact_id in workspaces and c.contact_id not in erased]
    else:
        todo = [c for c in todo if c.contact_id not in erased]
    if not todo:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INPUT_TABLE_SQL)
        with cursor.cursor.copy(
            f"COPY contacts_consent_input ({_INPUT_COLUMNS}) FROM STDIN"
        ) as copy:
            for c in todo:
                ev = c.evidence
                copy.write_row(
                    (
                        workspaces if isinstance(workspaces, int) else workspaces[c.contact_id],
                        c.contact_id,
                        c.channel,
                        c.purpose,
                        c.state,
                        _ACTION_FOR_STATE[c.state],
                        ev.source,
                        ev.source_detail[:500],
                        ev.occurred_at or now,
                        ev.ip or None,
                        ev.user_agent[:500],
                        ev.consent_text_version[:100],
                        ev.recorded_by[:150],
                        ev.note,
                    )
                )
        # Without statistics the planner joins the two CTEs by nested loop (seconds per batch).
        cursor.execute("ANALYZE contacts_consent_input")
        cursor.execute(_BULK_SQL, {"now": now})
        changed_ids = [row[0] for row in cursor.fetchall()]
        # Only contacts whose consent actually changed can have a different mask.
        sendable_refresh(contact_ids=set(changed_ids) - fresh)
        # Emptied here too, not only at commit: an outer transaction may run several batches.
        cursor.execute("TRUNCATE contacts_consent_input")
        return len(changed_ids)


def suppression_add(
    *,
    contact: Contact,
    channel: str,
    reason: str,
    source: str,
    detail: str = "",
    occurred_at: datetime | None = None,
    recorded_by: str = "",
) -> Suppression:
    """Block a channel whatever the consent says. Idempotent: repeated provider events (bounces
    arrive several times) keep the one active suppression."""
    if reason not in SUPPRESSION_REASONS:
        raise ConsentEvidenceMissing(
            _("unknown suppression reason %(reason)r") % {"reason": reason}
        )
    evidence = Evidence(
        source=source, occurred_at=occurred_at, recorded_by=recorded_by, source_detail=detail
    )
    _check_evidence(evidence, channel=channel, purpose=Purpose.MARKETING, grant=False)
    now = timezone.now()
    with transaction.atomic():
        suppression, created = Suppression.objects.get_or_create(
            contact=contact,
            channel=channel,
            active=True,
            defaults={
                "reason": reason,
                "detail": detail[:500],
                "workspace_id": contact.workspace_id,
            },
        )
        if created:
            sendable_refresh(contact_ids=[contact.pk])
            _event(
                workspace_id=contact.workspace_id,
                contact_id=contact.pk,
                channel=channel,
                purpose="",
                action=ConsentAction.SUPPRESS,
                state="",
                evidence=Evidence(
                    source=source,
                    occurred_at=occurred_at,
                    recorded_by=recorded_by,
                    source_detail=detail,
                    note=f"suppressed: {reason}",
                ),
                now=now,
            ).save()
    return suppression


def suppression_lift(
    *, contact: Contact, channel: str, source: str, recorded_by: str = "", note: str = ""
) -> int:
    """End the active suppression of a channel (say, a corrected address). Returns rows lifted."""
    evidence = Evidence(source=source, recorded_by=recorded_by, note=note)
    _check_evidence(evidence, channel=channel, purpose=Purpose.MARKETING, grant=False)
    now = timezone.now()
    with transaction.atomic():
        lifted = Suppression.objects.filter(contact=contact, channel=channel, active=True).update(
            active=False, lifted_at=now
        )
        if lifted:
            sendable_refresh(contact_ids=[contact.pk])
            _event(
                workspace_id=contact.workspace_id,
                contact_id=contact.pk,
                channel=channel,
                purpose="",
                action=ConsentAction.LIFT,
                state="",
                evidence=evidence,
                now=now,
            ).save()
    return lifted


def subject_hash(identifier: str) -> str:
    """Keyed hash of an identifier: lets evidence be matched to a person later without holding
    the identifier itself."""
    key = settings.CONTACTS_ERASURE_HASH_KEY.encode()
    return hmac.new(key, identifier.strip().lower().encode(), hashlib.sha256).hexdigest()


def consent_erase(*, contact: Contact, recorded_by: str = "") -> None:
    """Part of erasure: drop the current consent state (so nothing can be sent and nothing
    resurrects) and strip the evidence down to a hash of who it was about."""
    identifiers: Iterable[str | None] = (
        contact.email,
        str(contact.phone) if contact.phone else None,
        contact.external_id,
    )
    primary = next((i for i in identifiers if i), f"contact:{contact.pk}")
    now = timezone.now()
    with transaction.atomic():
        Consent.objects.filter(contact=contact).delete()
        Suppression.objects.filter(contact=contact, active=True).update(
            active=False, lifted_at=now, detail=""
        )
        ConsentEvent.objects.filter(contact=contact).update(
            subject_hash=subject_hash(primary), ip=None, user_agent="", note=""
        )
        _event(
            workspace_id=contact.workspace_id,
            contact_id=contact.pk,
            channel="",
            purpose="",
            action=ConsentAction.ERASE,
            state="",
            evidence=Evidence(source=ConsentSource.ERASURE, recorded_by=recorded_by),
            now=now,
        ).save()
        ConsentEvent.objects.filter(contact=contact, subject_hash="").update(
            subject_hash=subject_hash(primary)
        )
        Contact.objects.filter(pk=contact.pk).update(sendable=0)


def consent_log_details_change(*, contact: Contact, evidence: Evidence, note: str) -> None:
    """A contact changed their own email or phone (preference centre): logged with the same
    evidence as consent changes, since it changes where consent applies."""
    _check_evidence(evidence, channel=Channel.EMAIL, purpose=Purpose.MARKETING, grant=False)
    _event(
        workspace_id=contact.workspace_id,
        contact_id=contact.pk,
        channel="",
        purpose="",
        action=ConsentAction.DETAILS,
        state="",
        evidence=Evidence(
            source=evidence.source,
            occurred_at=evidence.occurred_at,
            ip=evidence.ip,
            user_agent=evidence.user_agent,
            recorded_by=evidence.recorded_by,
            note=note,
        ),
        now=timezone.now(),
    ).save()
