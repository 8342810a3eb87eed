from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from contacts.models import Channel, Contact, Purpose
from continuity.tenancy import WorkspaceManager
from delivery.states import DeliveryStatus
from delivery.templating import marketer_template_validate


class ChannelContent(models.Model):
    """What a person reads on each owned channel, as marketer templates (delivery.templating: a
    restricted Django template language); `{{ first_name }}`, `{{ last_name }}`, `{{ email }}`
    and every contact attribute are merge fields. A message holds it in the workspace's default
    language, each of its variants in another."""

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

    class Meta:
        abstract = True

    def channels_written(self) -> list[str]:
        """The owned channels (email, SMS, push) this content has what they need for."""
        ready: list[str] = []
        if self.email_subject and (self.email_html or self.email_text):
            ready.append(Channel.EMAIL)
        if self.sms_text:
            ready.append(Channel.SMS)
        if self.push_title and self.push_body:
            ready.append(Channel.PUSH)
        return ready


class Message(ChannelContent):
    """A campaign's fallback content: what is said on each owned channel (ChannelContent) in the
    workspace's default language, with its variants in other languages."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    name = models.CharField(_("name"), max_length=200)
    purpose = models.CharField(
        _("purpose"), max_length=16, choices=Purpose.choices, default=Purpose.MARKETING
    )
    # Every text below is rendered per recipient: checked as a marketer template when saved.
    whatsapp_template = models.CharField(
        _("WhatsApp template name"), max_length=200, blank=True, default=""
    )
    whatsapp_language = models.CharField(
        _("WhatsApp template language"), max_length=20, blank=True, default="en"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return self.name

    def channels_ready(self) -> list[str]:
        """Channels this message has content for."""
        return self.channels_written() + ([Channel.WHATSAPP] if self.whatsapp_template else [])


class MessageVariant(ChannelContent):
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
        return self.channels_written() + ([Channel.WHATSAPP] if self.whatsapp_language else [])


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
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    # host:pid of the worker process, for an operator reading a stuck claim.
    worker = models.CharField(_("worker"), max_length=200, blank=True, default="")
    claimed_at = models.DateTimeField(_("claimed at"))
    heartbeat_at = models.DateTimeField(_("heartbeat at"))
    # The deliveries whose request is leaving now (one SMS, one email request, one push window),
    # written right before it leaves; the previous request's answers are written before the next
    # request replaces this. If the worker is lost, only these may have reached the provider:
    # they become `unknown`, and the claim's other rows still `sending` go back to the queue.
    # Kept here rather than on each row: one small write per request, however many recipients.
    leaving = models.JSONField(_("leaving now"), default=list, blank=True)
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("delivery claim")
        verbose_name_plural = _("delivery claims")

    def __str__(self) -> str:
        return str(_("%(channel)s claim #%(id)s by %(worker)s")) % {
            "channel": self.get_channel_display(),
            "id": self.pk,
            "worker": self.worker,
        }


class DeliveryKind(models.TextChoices):
    """What a delivery is for: a campaign message, or a mail the system sends itself."""

    CAMPAIGN = "campaign", _("Campaign message")
    DOUBLE_OPT_IN = "double_opt_in", _("Double opt-in confirmation")
    PREFERENCE_LINK = "preference_link", _("Preference link")
    EMAIL_CHANGE = "email_change", _("Email change confirmation")


SYSTEM_MAIL_KINDS = frozenset(DeliveryKind.values) - {DeliveryKind.CAMPAIGN}


class Delivery(models.Model):
    """One message to one contact on one channel. Written before any provider call; the UNIQUE
    key makes repeated plans, alerts and redelivered tasks unable to create a second copy.

    A system mail (double opt-in, preference link, email-change confirmation) is a row too, with
    no message: its ``kind`` says which, ``address`` where it goes (an email change confirms an
    address the contact does not hold yet) and ``purpose`` what it confirms. It is sent by its
    own task (delivery/system_mail.py), one row at a time, since it must reach a contact whose
    consent is still pending, which the campaign claim refuses by design."""

    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # No separate index: the UNIQUE (message, contact, channel) index already leads with message,
    # and every extra index is paid on each of the millions of rows a reroute writes.
    # Null for a system mail only (kind != campaign).
    message = models.ForeignKey(
        Message,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_index=False,
        null=True,
        blank=True,
        verbose_name=_("message"),
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="deliveries", verbose_name=_("contact")
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    # Database defaults: materialize's INSERT ... SELECT writes campaign rows without naming them.
    kind = models.CharField(
        _("kind"), max_length=16, choices=DeliveryKind.choices, db_default=DeliveryKind.CAMPAIGN
    )
    address = models.CharField(_("address"), max_length=254, blank=True, db_default="")
    purpose = models.CharField(_("purpose"), max_length=16, blank=True, db_default="")
    status = models.CharField(
        _("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PLANNED
    )
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=0)
    provider = models.CharField(_("provider"), max_length=32, blank=True, default="")
    provider_message_id = models.CharField(
        _("provider message id"), max_length=100, blank=True, default=""
    )
    error_code = models.CharField(_("error code"), max_length=50, blank=True, default="")
    error_text = models.CharField(_("error text"), max_length=500, blank=True, default="")
    cost_units = models.PositiveIntegerField(_("cost units"), default=0)
    # Quiet hours and back-off: the row is not claimable before this time.
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
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
        verbose_name=_("claim"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    sending_at = models.DateTimeField(_("sending since"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["message", "contact", "channel"], name="delivery_one_per_message_contact"
            ),
            # A system mail has no message, so the key above never binds it (NULLs are distinct):
            # this one does. At most one mail of a kind per contact, purpose and address is on
            # its way at a time; asking again while it is queued joins it (its link is made when
            # it is sent, so the one mail serves both asks).
            models.UniqueConstraint(
                fields=["contact", "kind", "purpose", "address"],
                condition=Q(message__isnull=True, status__in=["planned", "queued", "sending"]),
                name="delivery_one_system_mail_in_flight",
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
        return f"{self.get_channel_display()} #{self.pk} {self.get_status_display()}"


class DeliveryEvent(models.Model):
    """The timeline of a delivery: every accepted transition, appended in bulk."""

    # Reads reach these rows through a keyed parent; an index of its own would be paid on every
    # bulk insert and never used.
    workspace = models.ForeignKey(
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="events", verbose_name=_("delivery")
    )
    status = models.CharField(_("status"), max_length=16, choices=DeliveryStatus.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    detail = models.CharField(_("detail"), max_length=500, blank=True, default="")
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("delivery event")
        verbose_name_plural = _("delivery events")
        indexes = [models.Index(fields=["delivery", "occurred_at"], name="delivery_event_timeline")]

    def __str__(self) -> str:
        return f"{self.get_status_display()} @ {self.occurred_at:%H:%M:%S}"


class ReceiptVerdict(models.TextChoices):
    RECEIVED = "received", _("Received (not processed yet)")
    APPLIED = "applied", pgettext_lazy("webhook receipt verdict", "Applied")
    UNMATCHED = "unmatched", _("Unmatched (kept for a later retry)")
    IGNORED = "ignored", _("Ignored (nothing to do)")
    REJECTED = "rejected", pgettext_lazy("webhook receipt verdict", "Rejected")


class ProviderReceipt(models.Model):
    """Every provider webhook request, kept before anything else is done with it.

    Rejected requests are kept too (with the reason), so a misconfigured key or an attack shows
    up in the admin. Events that name a message we do not know yet (the callback raced the write
    of the provider id) wait in ``pending`` and are re-applied by the sweeper.
    """

    # Set when every event in the request matched one workspace's messages; install-level
    # (operators only) otherwise.
    workspace = models.ForeignKey(
        "continuity.Workspace",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    provider = models.CharField(_("provider"), max_length=32)
    kind = models.CharField(_("kind"), max_length=32)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("body"), blank=True, default="")
    body_truncated = models.BooleanField(_("body truncated"), default=False)
    verdict = models.CharField(
        _("verdict"), max_length=16, choices=ReceiptVerdict.choices, default=ReceiptVerdict.RECEIVED
    )
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), default=200)
    reason = models.CharField(_("reason"), max_length=500, blank=True, default="")
    matched = models.PositiveIntegerField(_("matched"), default=0)
    pending = models.JSONField(_("pending events"), default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("provider receipt")
        verbose_name_plural = _("provider receipts")
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
        return f"{self.provider} {self.kind} {self.get_verdict_display()}"


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
    # The secret of the workspace's own Meta app, which signs its status webhooks; empty: the
    # install's app (WHATSAPP_APP_SECRET) signs them.
    whatsapp_app_secret_encrypted = models.TextField(blank=True, default="")
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
