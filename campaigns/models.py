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
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    network = models.CharField(max_length=32, choices=SocialNetwork.choices)
    display_name = models.CharField(max_length=200)
    page_id = models.CharField(max_length=100, blank=True, default="")
    ig_user_id = models.CharField(max_length=100, blank=True, default="")
    x_user_id = models.CharField(max_length=100, blank=True, default="")
    phone_number_id = models.CharField(max_length=100, blank=True, default="")
    # Fernet ciphertext (delivery.secrets); the plaintext token never touches the database.
    access_token_encrypted = models.TextField(blank=True, default="")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True)
    last_check_detail = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    objects = WorkspaceManager()

    class Meta:
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
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=24, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # Social content, with per-network overrides where limits differ:
    # {"x": {"text": "..."}, "instagram": {"image_url": "..."}}.
    text = models.TextField(blank=True, default="")
    link = models.URLField(max_length=500, blank=True, default="")
    image_url = models.URLField(max_length=500, blank=True, default="")
    overrides = models.JSONField(default=dict, blank=True)
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.MARKETING)
    # Fallback plan.
    fallback_channels = models.JSONField(
        default=list,
        blank=True,
        help_text=_('Ordered owned channels, e.g. ["push", "email", "sms"]'),
    )
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.PROTECT, related_name="campaign"
    )
    outage_policy = models.CharField(
        max_length=24, choices=OutagePolicy.choices, default=OutagePolicy.REROUTE
    )
    hold_then_reroute_minutes = models.PositiveIntegerField(default=15)
    max_hold_minutes = models.PositiveIntegerField(default=240)
    sms_budget_segments = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Most SMS segments a reroute may spend; empty: no limit")
    )
    send_mode = models.CharField(
        max_length=24, choices=SendMode.choices, default=SendMode.FIRST_REACHABLE
    )
    on_failback = models.CharField(
        max_length=16, choices=FailbackChoice.choices, default=FailbackChoice.FINISH
    )
    # The accounts to publish to; the dispatcher turns each into one SocialPost.
    accounts = models.ManyToManyField(SocialAccount, blank=True, related_name="campaigns")
    # When the dispatcher took it, and how late that was (missed while the system was down).
    claimed_at = models.DateTimeField(null=True, blank=True)
    lateness_s = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    objects = WorkspaceManager()

    class Meta:
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
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="posts")
    account = models.ForeignKey(SocialAccount, on_delete=models.PROTECT, related_name="posts")
    network = models.CharField(max_length=32, choices=network_choices)
    status = models.CharField(max_length=16, choices=PostStatus.choices, default=PostStatus.PENDING)
    external_id = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    last_error_code = models.CharField(max_length=50, blank=True, default="")
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    publishing_started_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    held_since = models.DateTimeField(null=True, blank=True)
    lateness_s = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When a pending post may be tried (back-off); the sweeper re-enqueues pending posts past it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Checks of the account's recent posts after an unanswered publish (unknown outcome).
    unknown_checks = models.PositiveSmallIntegerField(default=0)
    # The one extra publish allowed after an unknown outcome that the check did not find.
    republished = models.BooleanField(default=False)
    objects = WorkspaceManager()

    class Meta:
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
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="reroutes")
    network = models.CharField(max_length=32, choices=network_choices)
    window = models.ForeignKey(
        "outages.OutageWindow", on_delete=models.PROTECT, related_name="reroutes"
    )
    status = models.CharField(
        max_length=16, choices=RerouteStatus.choices, default=RerouteStatus.PLANNING
    )
    policy = models.CharField(max_length=24, choices=OutagePolicy.choices)
    # When owned-channel sends may start (the due time, or after a hold-then-reroute wait).
    send_after = models.DateTimeField(null=True, blank=True)
    # Keyset cursor: the last contact id planned, so a redelivered planning task resumes.
    planned_through_contact_id = models.BigIntegerField(default=0)
    planned = models.JSONField(default=dict, blank=True)  # {"email": 120, "sms": 30}
    exclusions = models.JSONField(default=dict, blank=True)  # {"no_consent": 12, ...}
    sms_segments_planned = models.PositiveIntegerField(default=0)
    signal_at = models.DateTimeField(null=True, blank=True)
    first_send_at = models.DateTimeField(null=True, blank=True)
    last_send_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    objects = WorkspaceManager()

    class Meta:
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
        "continuity.Workspace", on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(db_index=False)
    network = models.CharField(max_length=32, choices=network_choices)
    account = models.ForeignKey(
        SocialAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts"
    )
    post = models.ForeignKey(
        SocialPost, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempt_log"
    )
    kind = models.CharField(max_length=16, choices=AttemptKind.choices)
    probe = models.BooleanField(default=False)
    detail = models.CharField(max_length=500, blank=True, default="")
    objects = WorkspaceManager()

    class Meta:
        indexes = [models.Index(fields=["network", "at"], name="attempt_network_at")]

    def __str__(self) -> str:
        return f"{self.network} {self.kind} at {self.at:%H:%M:%S}"
