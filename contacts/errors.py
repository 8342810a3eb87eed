"""The contacts app's domain errors, mapped once to the API error shape by continuity.api."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from continuity.api import ContinuityError


class ContactsError(ContinuityError):
    code = "contacts_error"
    status_code = 400


class ConsentEvidenceMissing(ContactsError):
    code = "consent_evidence_missing"


class LawfulBasisRefused(ContactsError):
    code = "lawful_basis_refused"


class InvalidContactData(ContactsError):
    code = "invalid_contact"


class ContactErased(ContactsError):
    code = "contact_erased"
    status_code = 409


class NoPendingOptIn(ContactsError):
    code = "no_pending_opt_in"
    status_code = 409


class BadLink(ContactsError):
    code = "bad_link"


class LinkExpired(BadLink):
    code = "link_expired"


class EmailChangeRefused(ContactsError):
    code = "email_change_refused"
    status_code = 409


class InvalidPushSubscription(ContactsError):
    code = "invalid_push_subscription"


class UnknownWorkspace(ContactsError):
    code = "not_found"
    status_code = 404


class InvalidSegment(ContactsError):
    code = "invalid_segment"


class SegmentInUse(ContactsError):
    code = "segment_in_use"
    status_code = 409


class ImportUploadGone(ContactsError):
    """The confirm step of an admin import found no upload: confirmed already, expired, discarded
    by an erasure, or not this member's."""

    code = "import_upload_gone"
    status_code = 410

    def __init__(self, detail: Any = None) -> None:
        super().__init__(
            detail
            or _(
                "This upload is no longer available (already imported, older than a day, or "
                "discarded after an erasure). Upload the file again."
            )
        )
