"""Reads other apps need. Audience helpers return lazy querysets so callers can count them or use
them as subqueries (`contact_id__in=...values("pk")`) in one set-based statement."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, F, OuterRef, QuerySet

from contacts.models import (
    Consent,
    ConsentEvent,
    ConsentState,
    Contact,
    PushSubscription,
    Segment,
    Suppression,
    consent_bit,
)
from contacts.segments import segment_audience
from continuity.models import Workspace
from continuity.tenancy import workspace_get_or_404


def contacts_of(*, workspace: Workspace | int) -> QuerySet[Contact]:
    """The workspace's live (not erased) contacts."""
    return Contact.objects.for_workspace(workspace).filter(erased_at__isnull=True)


def contact_get(*, workspace: Workspace | int, pk: object) -> Contact:
    """The workspace's contact with this id; Http404 for a missing or another workspace's one."""
    return workspace_get_or_404(Contact, workspace=workspace, pk=pk)


def segments_of(*, workspace: Workspace | int) -> QuerySet[Segment]:
    return Segment.objects.for_workspace(workspace).order_by("name")


def segment_get(*, workspace: Workspace | int, pk: object) -> Segment:
    """The workspace's segment with this id; Http404 for a missing or another workspace's one."""
    return workspace_get_or_404(Segment, workspace=workspace, pk=pk)


def segment_contacts(segment: Segment) -> QuerySet[Contact]:
    """The segment's audience inside the segment's own workspace (never erased contacts, tag
    names of that workspace), as one queryset; nobody when the saved definition is invalid."""
    return segment_audience(segment=segment)


def consent_granted_exists(*, channel: str, purpose: str, contact_ref: str = "pk") -> Exists:
    return Exists(
        Consent.objects.filter(
            contact_id=OuterRef(contact_ref),
            channel=channel,
            purpose=purpose,
            state=ConsentState.GRANTED,
        )
    )


def suppression_active_exists(*, channel: str, contact_ref: str = "pk") -> Exists:
    return Exists(
        Suppression.objects.filter(contact_id=OuterRef(contact_ref), channel=channel, active=True)
    )


def contacts_consented(
    *, channel: str, purpose: str, base: QuerySet[Contact] | None = None
) -> QuerySet[Contact]:
    """Contacts that may be sent to on (channel, purpose): consent granted, no active
    suppression, not erased. Reachability (an address, a subscription) is the caller's join."""
    qs = base if base is not None else Contact.objects.all()
    # Contact.sendable is the consent and suppression state folded into one column by
    # contacts.consent; filtering on it keeps a million-contact audience a single scan.
    bit = consent_bit(channel, purpose)
    name = f"_sendable_{bit}"  # one alias per bit, so channels can be combined on one queryset
    return qs.alias(**{name: F("sendable").bitand(bit)}).filter(
        **{name: bit}, erased_at__isnull=True
    )


def consent_allows(*, contact_ids: Iterable[int], channel: str, purpose: str) -> set[int]:
    """The subset of `contact_ids` that may be sent to on (channel, purpose), in one query."""
    ids = list(contact_ids)
    if not ids:
        return set()
    return set(
        contacts_consented(
            channel=channel, purpose=purpose, base=Contact.objects.filter(pk__in=ids)
        ).values_list("pk", flat=True)
    )


def consent_states(*, contact: Contact) -> dict[tuple[str, str], str]:
    return {(c.channel, c.purpose): c.state for c in Consent.objects.filter(contact=contact)}


def consent_history(*, contact: Contact) -> QuerySet[ConsentEvent]:
    return ConsentEvent.objects.filter(contact=contact).order_by("-occurred_at", "-id")


def push_subscriptions_active(*, contact_ids: Iterable[int]) -> QuerySet[PushSubscription]:
    """Active subscriptions of many contacts (a send chunk's), newest first per contact."""
    return PushSubscription.objects.filter(
        contact_id__any_of=list(contact_ids), active=True
    ).order_by("contact_id", "-created_at")


def contact_find(
    *, workspace: Workspace | int, email: str | None = None, phone: str | None = None
) -> Contact | None:
    """The workspace's live contact holding this email or phone (normalised the way imports
    store them), e.g. for a provider's bounce or an inbound SMS keyword routed to a workspace.
    None when unknown or unparsable. The same address may belong to a contact in each
    workspace, so there is no install-wide lookup."""
    from contacts.normalize import FieldError, email_normalise, phone_normalise

    live = contacts_of(workspace=workspace)
    try:
        if email:
            return live.filter(email=email_normalise(email)).first()
        if phone:
            return live.filter(phone=phone_normalise(phone)).first()
    except FieldError:
        return None
    return None
