from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import Channel, Contact, Purpose
from continuity.tenancy import WorkspaceManager
from delivery.states import DeliveryStatus
from delivery.templating import marketer_template_validate


class Message(models.Model):
    """What is said on each owned channel. Texts are marketer templates (delivery.templating: a
    restricted Django template language); `{{ first_name }}`, `{{ last_name }}`, `{{ email }}`
    and every contact attribute are merge fields."""

    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    name = models.CharField(max_length=200)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.MARKETING)
    # Every text below is rendered per recipient: checked as a marketer template when saved.
    email_subject = models.CharField(
        max_length=300, blank=True, default="", validators=[marketer_template_validate]
    )
    email_html = models.TextField(blank=True, default="", validators=[marketer_template_validate])
    email_text = models.TextField(blank=True, default="", validators=[marketer_template_validate])
    sms_text = models.TextField(blank=True, default="", validators=[marketer_template_validate])
    push_title = models.CharField(
        max_length=200, blank=True, default="", validators=[marketer_template_validate]
    )
    push_body = models.CharField(
        max_length=500, blank=True, default="", validators=[marketer_template_validate]
    )
    push_url = models.URLField(
        max_length=500, blank=True, default="", validators=[marketer_template_validate]
    )
    push_icon = models.URLField(
        max_length=500, blank=True, default="", validators=[marketer_template_validate]
    )
    whatsapp_template = models.CharField(max_length=200, blank=True, default="")
    whatsapp_language = models.CharField(max_length=20, blank=True, default="en")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    objects = WorkspaceManager()

    def __str__(self) -> str:
        return self.name

    def channels_ready(self) -> list[str]:
        """Channels this message has content for."""
        ready: list[str] = []
        if self.email_subject and (self.email_html or self.email_text):
            ready.append(Channel.EMAIL)
        if self.sms_text:
            ready.append(Channel.SMS)
        if self.push_title and self.push_body:
            ready.append(Channel.PUSH)
        if self.whatsapp_template:
            ready.append(Channel.WHATSAPP)
        return ready


class MessageVariant(models.Model):
    """A message's content in one language: the fields of Message that are read by a person.

    A plain model rather than django-parler or django-modeltranslation: the languages are open
    ended per workspace (a marketer writes in any language their customers read, not only the
    interface's settings.LANGUAGES, which modeltranslation turns into columns at migrate time),
    and the send path picks a variant per contact inside set-based SQL and groups a chunk's
    recipients per variant, which wants a plain table to join and count on rather than a
    translation layer built around one active language per request. The base fields of Message
    stay the content in the workspace's default language (delivery/variants.py resolves).
    """

    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # No index of its own: the UNIQUE (message, language) index leads with message.
    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        related_name="variants",
        db_index=False,
        verbose_name=_("message"),
    )
    # The primary language subtag ("it", "en", "de"): what a contact's locale is matched on.
    language = models.CharField(_("language"), max_length=8)
    email_subject = models.CharField(
        _("email subject"),
        max_length=300,
        blank=True,
        default="",
        validators=[marketer_template_validate],
    )
    email_html = models.TextField(
        _("email HTML"), blank=True, default="", validators=[marketer_template_validate]
    )
    email_text = models.TextField(
        _("email text"), blank=True, default="", validators=[marketer_template_validate]
    )
    sms_text = models.TextField(
        _("SMS text"), blank=True, default="", validators=[marketer_template_validate]
    )
    push_title = models.CharField(
        _("push title"),
        max_length=200,
        blank=True,
        default="",
        validators=[marketer_template_validate],
    )
    push_body = models.CharField(
        _("push body"),
        max_length=500,
        blank=True,
        default="",
        validators=[marketer_template_validate],
    )
    push_url = models.URLField(
        _("push URL"),
        max_length=500,
        blank=True,
        default="",
        validators=[marketer_template_validate],
    )
    push_icon = models.URLField(
        _("push icon"),
        max_length=500,
        blank=True,
        default="",
        validators=[marketer_template_validate],
    )
    # WhatsApp templates are translated under one name: a variant names only the language its
    # translation was approved in ("it", "en_US"); empty: no WhatsApp in this language.
    whatsapp_language = models.CharField(
        _("WhatsApp template language"), max_length=20, blank=True, default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("content variant")
        verbose_name_plural = _("content variants")
        constraints = [
            models.UniqueConstraint(
                fields=["message", "language"], name="message_variant_one_per_language"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id}:{self.language}"

    def channels_ready(self) -> list[str]:
        """Channels this variant has content for (WhatsApp: the message's template exists in
        this variant's language)."""
        ready: list[str] = []
        if self.email_subject and (self.email_html or self.email_text):
            ready.append(Channel.EMAIL)
        if self.sms_text:
            ready.append(Channel.SMS)
        if self.push_title and self.push_body:
            ready.append(Channel.PUSH)
        if self.whatsapp_language:
            ready.append(Channel.WHATSAPP)
        return ready


class DeliveryClaim(models.Model):
    """One chunk task at work on one message's deliveries: the rows it claimed point here.

    The worker refreshes ``heartbeat_at`` from a thread while it sends and deletes the row when
    the chunk is done, so the sweeper can tell a slow live chunk (fresh heartbeat: left alone)
    from a dead one (stale or missing: its rows are resolved) without waiting for the 15-minute
    clock. Short-lived bookkeeping: nothing reads it but the worker and the sweeper.
    """

    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # host:pid of the worker process, for an operator reading a stuck claim.
    worker = models.CharField(max_length=200, blank=True, default="")
    claimed_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    # The deliveries whose request is leaving now (one SMS, one email request, one push window),
    # written right before it leaves; the previous request's answers are written before the next
    # request replaces this. If the worker is lost, only these may have reached the provider:
    # they become `unknown`, and the claim's other rows still `sending` go back to the queue.
    # Kept here rather than on each row: one small write per request, however many recipients.
    leaving = models.JSONField(default=list, blank=True)
    objects = WorkspaceManager()

    def __str__(self) -> str:
        return f"{self.channel} claim #{self.pk} by {self.worker}"


class Delivery(models.Model):
    """One message to one contact on one channel. Written before any provider call; the UNIQUE
    key makes repeated plans, alerts and redelivered tasks unable to create a second copy."""

    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # No separate index: the UNIQUE (message, contact, channel) index already leads with message,
    # and every extra index is paid on each of the millions of rows a reroute writes.
    message = models.ForeignKey(
        Message, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PLANNED
    )
    attempt = models.PositiveSmallIntegerField(default=0)
    provider = models.CharField(max_length=32, blank=True, default="")
    provider_message_id = models.CharField(max_length=100, blank=True, default="")
    error_code = models.CharField(max_length=50, blank=True, default="")
    error_text = models.CharField(max_length=500, blank=True, default="")
    cost_units = models.PositiveIntegerField(default=0)
    # Quiet hours and back-off: the row is not claimable before this time.
    not_before = models.DateTimeField(null=True, blank=True)
    # The chunk task that claimed the row for its current attempt. No database constraint: a
    # finished chunk deletes its claim, and a claim gone stale while its rows are still `sending`
    # lost its worker (the sweeper resolves them).
    claim = models.ForeignKey(
        DeliveryClaim,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    objects = WorkspaceManager()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["message", "contact", "channel"], name="delivery_one_per_message_contact"
            ),
        ]
        indexes = [
            models.Index(fields=["message", "channel", "status"], name="delivery_progress"),
            # The sweeper looks only at rows in flight; a partial index keeps that scan tiny.
            models.Index(
                fields=["status", "updated_at"],
                name="delivery_in_flight",
                condition=Q(status__in=["queued", "sending"]),
            ),
            models.Index(
                fields=["provider_message_id"],
                name="delivery_provider_id",
                condition=~Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk} {self.status}"


class DeliveryEvent(models.Model):
    """The timeline of a delivery: every accepted transition, appended in bulk."""

    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    occurred_at = models.DateTimeField()
    detail = models.CharField(max_length=500, blank=True, default="")
    objects = WorkspaceManager()

    class Meta:
        indexes = [models.Index(fields=["delivery", "occurred_at"], name="delivery_event_timeline")]

    def __str__(self) -> str:
        return f"{self.status} @ {self.occurred_at:%H:%M:%S}"


class ReceiptVerdict(models.TextChoices):
    RECEIVED = "received", "Received (not processed yet)"
    APPLIED = "applied", "Applied"
    UNMATCHED = "unmatched", "Unmatched (kept for a later retry)"
    IGNORED = "ignored", "Ignored (nothing to do)"
    REJECTED = "rejected", "Rejected"


class ProviderReceipt(models.Model):
    """Every provider webhook request, kept before anything else is done with it.

    Rejected requests are kept too (with the reason), so a misconfigured key or an attack shows
    up in the admin. Events that name a message we do not know yet (the callback raced the write
    of the provider id) wait in ``pending`` and are re-applied by the sweeper.
    """

    # Set when every event in the request matched one workspace's messages; install-level
    # (operators only) otherwise.
    workspace = models.ForeignKey(
        "continuity.Workspace", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    provider = models.CharField(max_length=32)
    kind = models.CharField(max_length=32)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True, default="")
    body_truncated = models.BooleanField(default=False)
    verdict = models.CharField(
        max_length=16, choices=ReceiptVerdict.choices, default=ReceiptVerdict.RECEIVED
    )
    status_code = models.PositiveSmallIntegerField(default=200)
    reason = models.CharField(max_length=500, blank=True, default="")
    matched = models.PositiveIntegerField(default=0)
    pending = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at"], name="receipt_recent"),
            # The re-apply pass only ever looks at unmatched receipts.
            models.Index(
                fields=["created_at"],
                name="receipt_unmatched",
                condition=Q(verdict="unmatched"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.verdict}"


class WorkspaceCredentials(models.Model):
    """A workspace's own provider accounts; one row per workspace, every field optional.

    Secrets are stored only as MultiFernet ciphertext under the install's keys (delivery.secrets,
    rotated by ``manage.py secrets_rotate``), with at most their last 4 characters kept apart as
    a hint for the admin. Identifiers (account SIDs, numbers, public keys) are not secret and stay
    readable, so webhooks can be routed and checked without decrypting anything. What a workspace
    leaves empty falls back to the install's settings (delivery/credentials.py says how).
    """

    workspace = models.OneToOneField(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    # SendGrid
    sendgrid_api_key_encrypted = models.TextField(blank=True, default="")
    sendgrid_from_email = models.EmailField(_("SendGrid sender email"), blank=True, default="")
    sendgrid_from_name = models.CharField(
        _("SendGrid sender name"), max_length=200, blank=True, default=""
    )
    # The account's signed event webhook public key (base64 DER): public, stored as is.
    sendgrid_webhook_verification_key = models.TextField(
        _("SendGrid event webhook verification key"), blank=True, default=""
    )
    # Twilio
    twilio_account_sid = models.CharField(
        _("Twilio account SID"), max_length=64, blank=True, default=""
    )
    twilio_auth_token_encrypted = models.TextField(blank=True, default="")
    twilio_messaging_service_sid = models.CharField(
        _("Twilio messaging service SID"), max_length=64, blank=True, default=""
    )
    twilio_from_number = models.CharField(
        _("Twilio from number"), max_length=32, blank=True, default=""
    )
    # Web push (VAPID)
    vapid_public_key = models.CharField(
        _("VAPID public key"), max_length=200, blank=True, default=""
    )
    vapid_private_key_encrypted = models.TextField(blank=True, default="")
    vapid_subject = models.CharField(_("VAPID subject"), max_length=200, blank=True, default="")
    # WhatsApp Cloud API (the owned channel; a campaign's own WhatsApp account still wins)
    whatsapp_phone_number_id = models.CharField(
        _("WhatsApp phone number id"), max_length=100, blank=True, default=""
    )
    whatsapp_access_token_encrypted = models.TextField(blank=True, default="")
    # {"twilio_auth_token": "…abcd"}: the admin shows these, never the secret.
    hints = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("provider credentials")
        verbose_name_plural = _("provider credentials")

    def __str__(self) -> str:
        return str(_("Provider credentials"))
