"""The CRM's tables: contacts, per-channel consent (state + append-only evidence), suppressions,
push subscriptions, tags and segments.

Only contacts/consent.py writes Consent, ConsentEvent and Suppression rows.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from phonenumber_field.modelfields import PhoneNumberField

from continuity.tenancy import WorkspaceManager


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Web push")
    WHATSAPP = "whatsapp", _("WhatsApp")


class Purpose(models.TextChoices):
    MARKETING = "marketing", _("Marketing")
    SERVICE = "service", _("Service notices")


class ConsentState(models.TextChoices):
    GRANTED = "granted", _("Granted")
    PENDING = "pending", _("Pending double opt-in")
    REVOKED = "revoked", _("Revoked")


class LawfulBasis(models.TextChoices):
    """Why a consent row lets us send (contacts/consent.py enforces the soft opt-in's rules)."""

    CONSENT = "consent", _("Consent")
    LEGITIMATE_INTEREST = "legitimate_interest", _("Legitimate interest (soft opt-in)")


class ConsentSource(models.TextChoices):
    FORM = "form", _("Web form")
    IMPORT = "import", pgettext_lazy("consent source", "Import")
    API = "api", _("API")
    ADMIN = "admin", _("Admin")
    SMS_KEYWORD = "sms_keyword", _("SMS keyword")
    BOUNCE = "bounce", _("Bounce")
    COMPLAINT = "complaint", _("Complaint")
    UNSUBSCRIBE_LINK = "unsubscribe_link", _("Unsubscribe link")
    PREFERENCE_CENTRE = "preference_centre", _("Preference centre")
    DOUBLE_OPT_IN = "double_opt_in", _("Double opt-in confirmation")
    PUSH_SUBSCRIBE = "push_subscribe", _("Browser push subscription")
    PROVIDER = "provider", _("Provider report")
    ERASURE = "erasure", _("Erasure")


class ConsentAction(models.TextChoices):
    GRANT = "grant", _("Granted")
    REQUEST = "request", _("Double opt-in requested")
    CONFIRM = "confirm", _("Double opt-in confirmed")
    REVOKE = "revoke", _("Revoked")
    SUPPRESS = "suppress", _("Suppressed")
    LIFT = "lift", _("Suppression lifted")
    ERASE = "erase", _("Contact erased")
    DETAILS = "details", _("Contact details changed")


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", _("Hard bounce")
    COMPLAINT = "complaint", _("Spam complaint")
    INVALID_NUMBER = "invalid_number", _("Invalid number")
    INVALID_ADDRESS = "invalid_address", _("Invalid address")
    CARRIER_BLOCK = "carrier_block", _("Carrier opt-out (STOP)")
    MANUAL = "manual", _("Manual")


# Frozen sets of the choice values: `TextChoices.values` rebuilds a list on every access, which
# shows up in profiles of bulk imports that check every row.
CHANNELS = frozenset(Channel.values)
PURPOSES = frozenset(Purpose.values)
CONSENT_STATES = frozenset(ConsentState.values)
CONSENT_SOURCES = frozenset(ConsentSource.values)
LAWFUL_BASES = frozenset(LawfulBasis.values)
SUPPRESSION_REASONS = frozenset(SuppressionReason.values)


def consent_bit(channel: str, purpose: str) -> int:
    """The bit of (channel, purpose) in Contact.sendable."""
    return SENDABLE_BITS[(channel, purpose)]


SENDABLE_BITS: dict[tuple[str, str], int] = {
    (channel, purpose): 1 << index
    for index, (channel, purpose) in enumerate(
        (c, p) for c in Channel.values for p in Purpose.values
    )
}


def validate_timezone(value: str) -> None:
    if value and value not in _available_timezones():
        raise ValidationError(f"unknown timezone {value!r}: use an IANA name such as Europe/Paris")


_TIMEZONES: frozenset[str] | None = None


def _available_timezones() -> frozenset[str]:
    global _TIMEZONES  # noqa: PLW0603 - computed once: the set is large and never changes
    if _TIMEZONES is None:
        _TIMEZONES = frozenset(zoneinfo.available_timezones())
    return _TIMEZONES


class Tag(models.Model):
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="tag_name_per_workspace"),
        ]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    # Indexed by contact_workspace_keyset (workspace, id), which serves every lookup by workspace
    # as well: a second index on workspace alone would only be paid on each import.
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    # Identifiers are nullable so that "unique when set" holds and an erased tombstone keeps none.
    external_id = models.CharField(  # noqa: DJ001
        _("external id"), max_length=200, null=True, blank=True
    )
    email = models.EmailField(_("email"), max_length=254, null=True, blank=True)  # noqa: DJ001
    phone = PhoneNumberField(_("phone"), null=True, blank=True)
    first_name = models.CharField(
        max_length=150, blank=True, default="", verbose_name=_("first name")
    )
    last_name = models.CharField(
        max_length=150, blank=True, default="", verbose_name=_("last name")
    )
    # The contact's language, a BCP 47 tag (contacts.normalize.locale_normalise; contacts.language
    # reads it). The column keeps its name: imports, exports and the API call it "locale".
    locale = models.CharField(
        max_length=35,
        blank=True,
        default="",
        verbose_name=_("language"),
        help_text=_("A BCP 47 tag such as it or it-IT. Empty: the workspace's default language."),
    )
    timezone = models.CharField(
        max_length=64,
        blank=True,
        default="",
        validators=[validate_timezone],
        verbose_name=_("timezone"),
    )
    tags: models.ManyToManyField[Tag, ContactTag] = models.ManyToManyField(
        Tag, through="ContactTag", related_name="contacts", blank=True
    )
    attributes = models.JSONField(default=dict, blank=True, verbose_name=_("attributes"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, db_index=True, verbose_name=_("updated at"))
    erased_at = models.DateTimeField(null=True, blank=True, verbose_name=_("erased at"))
    # An existing customer relationship: what the soft opt-in (legitimate interest) rests on.
    customer_since = models.DateField(
        null=True,
        blank=True,
        verbose_name=_("customer since"),
        help_text=_(
            "When this person bought from you. Needed to email or text them on the basis of "
            "legitimate interest (soft opt-in) instead of consent."
        ),
    )
    # Derived, never edited: one bit per (channel, purpose) that may be sent to right now
    # (consent granted, channel not suppressed, not erased; see consent_bit). Kept by
    # contacts.consent in the same transaction as every change, so audience queries filter one
    # column of one table instead of joining consent and suppressions for every contact.
    sendable = models.PositiveSmallIntegerField(
        default=0, db_default=0, editable=False, verbose_name=_("sendable")
    )
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        permissions = [
            ("export_contact", _("Can export contacts' personal data")),
            ("erase_contact", _("Can erase a contact")),
            ("import_contact", _("Can import contacts")),
            ("record_consent", _("Can record a consent change on a contact's behalf")),
        ]
        indexes = [
            # A reroute walks one workspace's contacts in id order (keyset slices): with the id
            # after the workspace, a slice is one index range, however the workspaces' contacts
            # interleave in the table. erased_at and timezone ride along so that fixing a
            # slice's bounds and time zones reads the index alone, not every heap page that
            # holds one of the workspace's contacts.
            models.Index(
                fields=["workspace", "id"],
                include=["erased_at", "timezone"],
                name="contact_workspace_keyset",
            ),
        ]
        constraints = [
            # Identifiers are unique per workspace: two client businesses may both know a person.
            models.UniqueConstraint(
                fields=["workspace", "external_id"],
                condition=Q(external_id__isnull=False),
                name="contact_external_id_per_workspace",
            ),
            models.UniqueConstraint(
                fields=["workspace", "email"],
                condition=Q(email__isnull=False),
                name="contact_email_per_workspace",
            ),
            models.UniqueConstraint(
                fields=["workspace", "phone"],
                condition=Q(phone__isnull=False),
                name="contact_phone_per_workspace",
            ),
        ]

    def __str__(self) -> str:
        if self.erased_at:
            return str(_("erased contact #%(id)s")) % {"id": self.pk}
        name = f"{self.first_name} {self.last_name}".strip()
        return (
            name
            or self.email
            or str(self.phone or "")
            or str(_("contact #%(id)s")) % {"id": self.pk}
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        # sendable belongs to contacts.consent, which updates it with queryset updates; a full
        # save() of an instance loaded earlier (admin form, API) must not write back a stale mask.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name != "sendable"
            ]
        super().save(*args, **kwargs)

    def merge_fields(self) -> dict[str, Any]:
        """What a message template may use: the free attributes plus the named fields."""
        return {
            **(self.attributes or {}),
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email or "",
            "phone": str(self.phone or ""),
            "locale": self.locale,
            "timezone": self.timezone,
        }


class ContactTag(models.Model):
    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, verbose_name=_("contact"))
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, verbose_name=_("tag"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("contact tag")
        verbose_name_plural = _("contact tags")
        constraints = [
            models.UniqueConstraint(fields=["contact", "tag"], name="contact_tag_unique"),
        ]
        # Segment filters start from the tag: "which contacts carry tag X".
        indexes = [models.Index(fields=["tag", "contact"], name="contact_tag_by_tag")]

    def __str__(self) -> str:
        return f"{self.tag_id} on contact #{self.contact_id}"


class Consent(models.Model):
    """Current state per (contact, channel, purpose). Written only by contacts/consent.py."""

    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="consents", verbose_name=_("contact")
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, verbose_name=_("channel"))
    purpose = models.CharField(max_length=16, choices=Purpose.choices, verbose_name=_("purpose"))
    state = models.CharField(max_length=16, choices=ConsentState.choices, verbose_name=_("state"))
    lawful_basis = models.CharField(
        max_length=24,
        choices=LawfulBasis.choices,
        default=LawfulBasis.CONSENT,
        db_default=LawfulBasis.CONSENT,
        verbose_name=_("lawful basis"),
    )
    updated_at = models.DateTimeField(verbose_name=_("updated at"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "channel", "purpose"], name="consent_contact_channel_purpose"
            ),
        ]
        # Audience queries ask "who is granted on (channel, purpose)": an index-only scan of this.
        indexes = [
            models.Index(
                fields=["channel", "purpose", "state", "contact"], name="consent_audience"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_channel_display()}/{self.get_purpose_display()}: {self.get_state_display()}"
        )


class ConsentEvent(models.Model):
    """Append-only evidence of every consent change. Never updated except to hash on erasure."""

    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="consent_events", verbose_name=_("contact")
    )
    channel = models.CharField(
        max_length=16, choices=Channel.choices, blank=True, default="", verbose_name=_("channel")
    )
    purpose = models.CharField(
        max_length=16, choices=Purpose.choices, blank=True, default="", verbose_name=_("purpose")
    )
    action = models.CharField(
        max_length=16, choices=ConsentAction.choices, verbose_name=_("action")
    )
    state = models.CharField(
        max_length=16, choices=ConsentState.choices, blank=True, default="", verbose_name=_("state")
    )
    source = models.CharField(
        max_length=32, choices=ConsentSource.choices, verbose_name=_("source")
    )
    source_detail = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("source detail")
    )
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    recorded_at = models.DateTimeField(auto_now_add=True, verbose_name=_("recorded at"))
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name=_("ip"))
    user_agent = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("user agent")
    )
    consent_text_version = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("consent text version")
    )
    recorded_by = models.CharField(
        max_length=150, blank=True, default="", verbose_name=_("recorded by")
    )
    note = models.TextField(blank=True, default="", verbose_name=_("note"))
    # The basis the consent stood on after this change ("" for suppressions and erasures).
    lawful_basis = models.CharField(
        max_length=24,
        choices=LawfulBasis.choices,
        blank=True,
        default="",
        db_default=LawfulBasis.CONSENT,
        verbose_name=_("lawful basis"),
    )
    # Set on erasure: HMAC of the identifiers the evidence was about, so proof survives the person.
    subject_hash = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("subject hash")
    )
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["contact", "occurred_at"], name="consent_event_contact"),
            # Only erased contacts' evidence carries a hash: a partial index stays tiny and
            # costs nothing on the bulk inserts of live evidence.
            models.Index(
                fields=["subject_hash"],
                condition=~Q(subject_hash=""),
                name="consent_event_subject",
            ),
        ]

    def __str__(self) -> str:
        return str(_("%(action)s %(channel)s/%(purpose)s, source: %(source)s")) % {
            "action": self.get_action_display(),
            "channel": self.get_channel_display(),
            "purpose": self.get_purpose_display(),
            "source": self.get_source_display(),
        }


class Suppression(models.Model):
    """Blocks a channel whatever the consent says. Written only by contacts/consent.py."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="suppressions", verbose_name=_("contact")
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, verbose_name=_("channel"))
    reason = models.CharField(
        max_length=32, choices=SuppressionReason.choices, verbose_name=_("reason")
    )
    detail = models.CharField(max_length=500, blank=True, default="", verbose_name=_("detail"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    lifted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("lifted at"))
    active = models.BooleanField(default=True, verbose_name=_("active"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "channel"],
                condition=Q(active=True),
                name="suppression_one_active_per_channel",
            ),
        ]
        indexes = [
            models.Index(
                fields=["channel", "contact"],
                condition=Q(active=True),
                name="suppression_active",
            ),
        ]

    def __str__(self) -> str:
        return str(_("%(channel)s suppressed: %(reason)s")) % {
            "channel": self.get_channel_display(),
            "reason": self.get_reason_display(),
        }


class PushSubscription(models.Model):
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="push_subscriptions",
        verbose_name=_("contact"),
    )
    endpoint = models.URLField(max_length=1000, verbose_name=_("endpoint"))
    p256dh = models.CharField(max_length=200, verbose_name=_("p256dh"))
    auth = models.CharField(max_length=100, verbose_name=_("auth"))
    user_agent = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("user agent")
    )
    expiration_time = models.DateTimeField(null=True, blank=True, verbose_name=_("expiration time"))
    active = models.BooleanField(default=True, verbose_name=_("active"))
    failure_count = models.PositiveIntegerField(default=0, verbose_name=_("failure count"))
    last_failure = models.CharField(
        max_length=300, blank=True, default="", verbose_name=_("last failure")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("push subscription")
        verbose_name_plural = _("push subscriptions")
        constraints = [
            # One browser may subscribe to two client businesses' sites under the same VAPID key.
            models.UniqueConstraint(
                fields=["workspace", "endpoint"], name="push_endpoint_per_workspace"
            ),
        ]
        indexes = [
            models.Index(fields=["contact"], condition=Q(active=True), name="push_active_contact")
        ]

    def __str__(self) -> str:
        return str(_("push #%(id)s for contact #%(contact)s")) % {
            "id": self.pk,
            "contact": self.contact_id,
        }


class Segment(models.Model):
    """A saved audience: tags (any / all / none) plus attribute filters, compiled by
    contacts.selectors.segment_contacts into one queryset."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    description = models.TextField(blank=True, default="", verbose_name=_("description"))
    tags_any = models.JSONField(
        default=list, blank=True, help_text=_("tag names: at least one"), verbose_name=_("tags any")
    )
    tags_all = models.JSONField(
        default=list, blank=True, help_text=_("tag names: every one"), verbose_name=_("tags all")
    )
    tags_none = models.JSONField(
        default=list,
        blank=True,
        help_text=_("tag names: none of them"),
        verbose_name=_("tags none"),
    )
    attribute_filters = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            'list of {"key": ..., "op": "eq|ne|in|exists|gt|gte|lt|lte|contains", "value": ...}'
        ),
        verbose_name=_("attribute filters"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], name="segment_name_per_workspace"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from contacts.errors import InvalidSegment
        from contacts.segments import segment_validate_definition

        try:
            segment_validate_definition(
                tags_any=self.tags_any,
                tags_all=self.tags_all,
                tags_none=self.tags_none,
                attribute_filters=self.attribute_filters,
            )
        except InvalidSegment as exc:
            raise ValidationError(str(exc.detail)) from None


class ErasedIdentifierKind(models.TextChoices):
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")


class ErasedIdentifier(models.Model):
    """A person who asked to be forgotten, as a keyed hash of one identifier (email, phone): what
    lets an import, the API or the preference centre refuse to add them back without new consent
    (contacts/privacy.py). Never the identifier itself. Written and lifted only by
    contacts.privacy."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    kind = models.CharField(
        max_length=8, choices=ErasedIdentifierKind.choices, verbose_name=_("kind")
    )
    # HMAC-SHA256 hex under CONTACTS_ERASURE_HASH_KEY (contacts.consent.subject_hash's scheme).
    digest = models.CharField(max_length=64, verbose_name=_("digest"))
    erased_at = models.DateTimeField(verbose_name=_("erased at"))
    # Set when staff recorded fresh consent evidence for the person (the only way back in).
    lifted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("lifted at"))
    lifted_by = models.CharField(
        max_length=150, blank=True, default="", verbose_name=_("lifted by")
    )
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("erased identifier")
        verbose_name_plural = _("erased identifiers")
        constraints = [
            # Digest first: a provider report is checked against every workspace's erasures
            # (its receipt may not know its workspace yet), an import against one workspace's.
            models.UniqueConstraint(
                fields=["digest", "workspace"],
                condition=Q(lifted_at__isnull=True),
                name="erased_identifier_active",
            ),
        ]

    def __str__(self) -> str:
        return f"erased {self.kind} {self.digest[:12]}…"


class ImportVia(models.TextChoices):
    COMMAND = "command", _("import_contacts command")
    ADMIN = "admin", _("Admin import")


class ImportRun(models.Model):
    """One contact import (the command's or the admin's) and its totals. The rows it refused are
    kept here, and only here (ImportRefusedRow): the install is the one keeper of an import's
    error report, so erasure can strip a person's lines from it and retention can expire it
    (contacts/import_runs.py). A run whose ``finished_at`` stays empty was interrupted."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    via = models.CharField(max_length=16, choices=ImportVia.choices, verbose_name=_("via"))
    file_name = models.CharField(max_length=200, blank=True, verbose_name=_("file"))
    # The file's header as read, so a refused row's values can be written back under it.
    columns = ArrayField(models.CharField(max_length=200), default=list, verbose_name=_("columns"))
    actor_label = models.CharField(max_length=150, blank=True, verbose_name=_("by"))
    started_at = models.DateTimeField(default=timezone.now, verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    rows = models.PositiveIntegerField(default=0, verbose_name=_("rows"))
    created = models.PositiveIntegerField(default=0, verbose_name=_("created"))
    updated = models.PositiveIntegerField(default=0, verbose_name=_("updated"))
    unchanged = models.PositiveIntegerField(default=0, verbose_name=_("unchanged"))
    refused = models.PositiveIntegerField(default=0, verbose_name=_("refused"))
    # Refused rows an erasure took out of the report: the totals above still count them.
    erased_rows = models.PositiveIntegerField(
        default=0, verbose_name=_("refused rows removed by erasures")
    )
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        indexes = [models.Index(fields=["workspace", "-started_at"], name="importrun_recent")]

    def __str__(self) -> str:
        return f"{self.file_name or self.get_via_display()} ({self.started_at:%Y-%m-%d %H:%M})"


class ImportRefusedRow(models.Model):
    """One line of an import's error report: the row number in the file, the field and reason,
    and the row's original values (to fix and import again)."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # erasure's scan leads with it (importrefused_workspace)
        verbose_name=_("workspace"),
    )
    run = models.ForeignKey(
        ImportRun,
        on_delete=models.CASCADE,
        related_name="refused_rows",
        db_index=False,  # the (run, row) index leads with it
        verbose_name=_("import"),
    )
    row = models.PositiveIntegerField(verbose_name=_("row"))
    field = models.CharField(max_length=200, verbose_name=_("field"))
    message = models.TextField(verbose_name=_("reason"))
    values = ArrayField(models.TextField(), default=list, verbose_name=_("values"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("refused row")
        verbose_name_plural = _("refused rows")
        indexes = [
            models.Index(fields=["run", "row"], name="importrefused_run_row"),
            models.Index(fields=["workspace"], name="importrefused_workspace"),
        ]

    def __str__(self) -> str:
        return f"row {self.row}: {self.field}"


class ImportUpload(models.Model):
    """A file uploaded to the admin import, kept between its preview and its confirmation
    (django-import-export's temporary storage, contacts/import_uploads.py). Only the member who
    uploaded it, in the same workspace, can read it back; it goes when confirmed, when its
    preview refuses it, when an erasure in the workspace discards pending uploads, and by
    retention after a day."""

    # Ids grow with age (retention walks them); the name is what the confirm form carries.
    name = models.CharField(max_length=32, verbose_name=_("name"))
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("uploaded at"))
    content = models.BinaryField(verbose_name=_("content"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("pending import upload")
        verbose_name_plural = _("pending import uploads")
        indexes = [models.Index(fields=["workspace", "created_at"], name="importupload_age")]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="importupload_name")
        ]

    def __str__(self) -> str:
        return self.name
