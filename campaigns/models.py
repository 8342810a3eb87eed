from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import Channel, Purpose, Segment
from continuity.tenancy import WorkspaceManager
from delivery.models import Message
from outages.networks import network_choices

# Owned channels a fallback plan may use, in the order the marketer lists them.
FALLBACK_CHANNELS = (Channel.PUSH, Channel.EMAIL, Channel.SMS)


class SocialNetwork(models.TextChoices):
    """The networks Continuity publishes to itself (outages/ knows more networks than these)."""

    FACEBOOK = "facebook", _("Facebook")
    INSTAGRAM = "instagram", _("Instagram")
    X = "x", _("X (Twitter)")
    WHATSAPP = "whatsapp", _("WhatsApp")


class SocialAccount(models.Model):
    """A page, profile or WhatsApp number the business publishes through."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    network = models.CharField(
        max_length=32, choices=SocialNetwork.choices, verbose_name=_("network")
    )
    display_name = models.CharField(max_length=200, verbose_name=_("display name"))
    page_id = models.CharField(max_length=100, blank=True, default="", verbose_name=_("page id"))
    ig_user_id = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("ig user id")
    )
    x_user_id = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("x user id")
    )
    phone_number_id = models.CharField(
        max_length=100, blank=True, default="", verbose_name=_("phone number id")
    )
    # Fernet ciphertext (delivery.secrets); the plaintext token never touches the database.
    access_token_encrypted = models.TextField(
        blank=True, default="", verbose_name=_("access token encrypted")
    )
    token_expires_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("token expires at")
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))
    # The language the account's followers read: which of a campaign's post variants it
    # publishes (campaigns/content.py). One post per account, not one per language: a page
    # posting the same news three times in three languages looks like spam to its followers
    # and to the network. Empty: the workspace's default language.
    language = models.CharField(
        max_length=8,
        blank=True,
        default="",
        verbose_name=_("language"),
        help_text=_("Language code (e.g. it, en) of the posts; empty: the workspace's default"),
    )
    last_checked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last checked at"))
    last_check_ok = models.BooleanField(null=True, verbose_name=_("last check ok"))
    last_check_detail = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("last check detail")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("social account")
        verbose_name_plural = _("social accounts")
        ordering = ["network", "display_name"]

    def __str__(self) -> str:
        return f"{self.get_network_display()}: {self.display_name}"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    PUBLISHING = "publishing", _("Publishing")
    PUBLISHED = "published", _("Published")
    PARTIALLY_PUBLISHED = "partially_published", _("Partially published")
    REROUTED = "rerouted", _("Rerouted")
    HELD = "held", _("Held")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


class OutagePolicy(models.TextChoices):
    REROUTE = "reroute", _("Reroute to owned channels")
    HOLD = "hold", _("Hold, publish when the network is back")
    HOLD_THEN_REROUTE = "hold_then_reroute", _("Hold for a while, then reroute")
    SKIP = "skip", _("Skip (record it, send nothing)")


class SendMode(models.TextChoices):
    FIRST_REACHABLE = "first_reachable", _("Each contact's first reachable channel")
    ALL = "all", _("Every consented, reachable channel")


class FailbackChoice(models.TextChoices):
    FINISH = "finish", _("Finish sending what was planned")
    CANCEL = "cancel", _("Cancel what has not been sent yet")


class Campaign(models.Model):
    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    status = models.CharField(
        max_length=24,
        choices=CampaignStatus.choices,
        default=CampaignStatus.DRAFT,
        verbose_name=_("status"),
    )
    scheduled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("scheduled at"))
    # Social content, with per-network overrides where limits differ:
    # {"x": {"text": "..."}, "instagram": {"image_url": "..."}}.
    text = models.TextField(blank=True, default="", verbose_name=_("text"))
    link = models.URLField(max_length=500, blank=True, default="", verbose_name=_("link"))
    image_url = models.URLField(max_length=500, blank=True, default="", verbose_name=_("image url"))
    overrides = models.JSONField(default=dict, blank=True, verbose_name=_("overrides"))
    segment = models.ForeignKey(
        Segment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        verbose_name=_("segment"),
    )
    purpose = models.CharField(
        max_length=16, choices=Purpose.choices, default=Purpose.MARKETING, verbose_name=_("purpose")
    )
    # Fallback plan.
    fallback_channels = models.JSONField(
        default=list,
        blank=True,
        help_text=_('Ordered owned channels, e.g. ["push", "email", "sms"]'),
        verbose_name=_("fallback channels"),
    )
    message = models.OneToOneField(
        Message,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaign",
        verbose_name=_("message"),
    )
    outage_policy = models.CharField(
        max_length=24,
        choices=OutagePolicy.choices,
        default=OutagePolicy.REROUTE,
        verbose_name=_("outage policy"),
    )
    hold_then_reroute_minutes = models.PositiveIntegerField(
        default=15, verbose_name=_("hold then reroute minutes")
    )
    max_hold_minutes = models.PositiveIntegerField(default=240, verbose_name=_("max hold minutes"))
    sms_budget_segments = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Most SMS segments a reroute may spend; empty: no limit"),
        verbose_name=_("sms budget segments"),
    )
    send_mode = models.CharField(
        max_length=24,
        choices=SendMode.choices,
        default=SendMode.FIRST_REACHABLE,
        verbose_name=_("send mode"),
    )
    on_failback = models.CharField(
        max_length=16,
        choices=FailbackChoice.choices,
        default=FailbackChoice.FINISH,
        verbose_name=_("on failback"),
    )
    # The accounts to publish to; the dispatcher turns each into one SocialPost.
    accounts = models.ManyToManyField(
        SocialAccount, blank=True, related_name="campaigns", verbose_name=_("accounts")
    )
    # When the dispatcher took it, and how late that was (missed while the system was down).
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed at"))
    lateness_s = models.PositiveIntegerField(default=0, verbose_name=_("lateness s"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-scheduled_at", "-id"]
        indexes = [
            # The dispatcher's claim: due scheduled campaigns, oldest first.
            models.Index(
                fields=["scheduled_at"],
                name="campaign_due",
                condition=Q(status="scheduled"),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignPostVariant(models.Model):
    """The campaign's social post in one language: text, link and image (the base fields of
    Campaign are the workspace's default language). A plain variant model, for the reasons
    delivery.models.MessageVariant gives."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("workspace"),
    )
    # No index of its own: the UNIQUE (campaign, language) index leads with campaign.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="post_variants",
        db_index=False,
        verbose_name=_("campaign"),
    )
    language = models.CharField(max_length=8, verbose_name=_("language"))
    text = models.TextField(blank=True, default="", verbose_name=_("text"))
    link = models.URLField(max_length=500, blank=True, default="", verbose_name=_("link"))
    image_url = models.URLField(max_length=500, blank=True, default="", verbose_name=_("image url"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("post variant")
        verbose_name_plural = _("post variants")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "language"], name="post_variant_one_per_language"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.language}"


class PostStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PUBLISHING = "publishing", _("Publishing")
    PUBLISHED = "published", _("Published")
    FAILED = "failed", _("Failed")
    UNKNOWN = "unknown", _("Unknown (checking)")
    HELD = "held", _("Held")
    REROUTED = "rerouted", _("Rerouted")
    SKIPPED = "skipped", _("Skipped")


class SocialPost(models.Model):
    """A campaign's post on one account: the unit that publishes, holds or reroutes."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="posts", verbose_name=_("campaign")
    )
    account = models.ForeignKey(
        SocialAccount, on_delete=models.PROTECT, related_name="posts", verbose_name=_("account")
    )
    network = models.CharField(max_length=32, choices=network_choices, verbose_name=_("network"))
    status = models.CharField(
        max_length=16,
        choices=PostStatus.choices,
        default=PostStatus.PENDING,
        verbose_name=_("status"),
    )
    external_id = models.CharField(
        max_length=200, blank=True, default="", verbose_name=_("external id")
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    last_error = models.CharField(
        max_length=500, blank=True, default="", verbose_name=_("last error")
    )
    last_error_code = models.CharField(
        max_length=50, blank=True, default="", verbose_name=_("last error code")
    )
    fingerprint = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("fingerprint")
    )
    publishing_started_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("publishing started at")
    )
    published_at = models.DateTimeField(null=True, blank=True, verbose_name=_("published at"))
    held_since = models.DateTimeField(null=True, blank=True, verbose_name=_("held since"))
    lateness_s = models.PositiveIntegerField(default=0, verbose_name=_("lateness s"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    # When a pending post may be tried (back-off); the sweeper re-enqueues pending posts past it.
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    # Checks of the account's recent posts after an unanswered publish (unknown outcome).
    unknown_checks = models.PositiveSmallIntegerField(default=0, verbose_name=_("unknown checks"))
    # The one extra publish allowed after an unknown outcome that the check did not find.
    republished = models.BooleanField(default=False, verbose_name=_("republished"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("social post")
        verbose_name_plural = _("social posts")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "account"], name="post_one_per_account"),
        ]
        indexes = [models.Index(fields=["network", "status"], name="post_network_status")]

    def __str__(self) -> str:
        return f"{self.campaign} on {self.account}"


class RerouteStatus(models.TextChoices):
    PLANNING = "planning", _("Planning")
    SENDING = "sending", _("Sending")
    HOLDING = "holding", _("Holding")
    DONE = "done", _("Done")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")


class Reroute(models.Model):
    """One campaign's answer to one outage window on one network. The UNIQUE key is what makes
    ten identical alerts, two monitors and the dispatcher racing the webhook plan it once."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="reroutes", verbose_name=_("campaign")
    )
    network = models.CharField(max_length=32, choices=network_choices, verbose_name=_("network"))
    window = models.ForeignKey(
        "outages.OutageWindow",
        on_delete=models.PROTECT,
        related_name="reroutes",
        verbose_name=_("window"),
    )
    status = models.CharField(
        max_length=16,
        choices=RerouteStatus.choices,
        default=RerouteStatus.PLANNING,
        verbose_name=_("status"),
    )
    policy = models.CharField(max_length=24, choices=OutagePolicy.choices, verbose_name=_("policy"))
    # When owned-channel sends may start (the due time, or after a hold-then-reroute wait).
    send_after = models.DateTimeField(null=True, blank=True, verbose_name=_("send after"))
    # Keyset cursor: the last contact id planned, so a redelivered planning task resumes.
    planned_through_contact_id = models.BigIntegerField(
        default=0, verbose_name=_("planned through contact id")
    )
    planned = models.JSONField(
        default=dict, blank=True, verbose_name=_("planned")
    )  # {"email": 120, "sms": 30}
    exclusions = models.JSONField(
        default=dict, blank=True, verbose_name=_("exclusions")
    )  # {"no_consent": 12, ...}
    sms_segments_planned = models.PositiveIntegerField(
        default=0, verbose_name=_("sms segments planned")
    )
    # {"email": {"it": 80, "en": 40}, "sms": {"it": 30}}: deliveries planned per channel and
    # content language (campaigns/language_counts.py).
    planned_languages = models.JSONField(
        default=dict, blank=True, verbose_name=_("planned per language")
    )
    signal_at = models.DateTimeField(null=True, blank=True, verbose_name=_("signal at"))
    first_send_at = models.DateTimeField(null=True, blank=True, verbose_name=_("first send at"))
    last_send_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last send at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("reroute")
        verbose_name_plural = _("reroutes")
        permissions = [("run_drill", _("Can run an outage drill"))]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "network", "window"], name="reroute_once_per_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} / {self.network} / window {self.window_id}"


class AttemptKind(models.TextChoices):
    OK = "ok", _("Published")
    TRANSIENT = "transient", _("Transient failure")
    THROTTLED = "throttled", _("Throttled")
    PERMANENT = "permanent", _("Permanent failure")
    UNKNOWN = "unknown", _("Unknown outcome")


class PublishAttempt(models.Model):
    """One call to a network (a publish or a health probe) and how it ended. Self-detection
    reads these (delivery.publishers.health) over a short window: PostgreSQL, not Redis."""

    workspace = models.ForeignKey(
        "continuity.Workspace",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("workspace"),
    )
    at = models.DateTimeField(db_index=False, verbose_name=_("at"))
    network = models.CharField(max_length=32, choices=network_choices, verbose_name=_("network"))
    account = models.ForeignKey(
        SocialAccount,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attempts",
        verbose_name=_("account"),
    )
    post = models.ForeignKey(
        SocialPost,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attempt_log",
        verbose_name=_("post"),
    )
    kind = models.CharField(max_length=16, choices=AttemptKind.choices, verbose_name=_("kind"))
    probe = models.BooleanField(default=False, verbose_name=_("probe"))
    detail = models.CharField(max_length=500, blank=True, default="", verbose_name=_("detail"))
    objects = WorkspaceManager()

    class Meta:
        verbose_name = _("publish attempt")
        verbose_name_plural = _("publish attempts")
        indexes = [models.Index(fields=["network", "at"], name="attempt_network_at")]

    def __str__(self) -> str:
        return f"{self.network} {self.kind} at {self.at:%H:%M:%S}"
