from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey


class Heartbeat(models.Model):
    """Last time a periodic process proved it was alive; /readyz reads the one named "beat"."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()
    beats = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"


class Workspace(models.Model):
    """One client business: its contacts, consent, campaigns, credentials and people.

    Every row that belongs to a client carries a workspace key (docs/workspaces.md). The settings
    below are the workspace's own; an empty one falls back to the install's setting.
    """

    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    sms_budget_segments = models.PositiveIntegerField(
        _("SMS budget per reroute (segments)"),
        null=True,
        blank=True,
        help_text=_("Used by campaigns without a budget of their own. Empty: no workspace cap."),
    )
    frequency_cap_per_day = models.PositiveIntegerField(
        _("fallback messages per contact per day"),
        null=True,
        blank=True,
        help_text=_("Empty: the install's REROUTE_FREQUENCY_CAP_PER_DAY. 0 turns the cap off."),
    )
    quiet_hours_sms = models.CharField(
        _("SMS quiet hours"),
        max_length=11,
        blank=True,
        help_text=_("HH:MM-HH:MM in each contact's time zone. Empty: the install's default."),
    )
    timezone = models.CharField(
        _("default time zone"),
        max_length=64,
        blank=True,
        help_text=_("For contacts without one. Empty: the install's REROUTE_DEFAULT_TIMEZONE."),
    )
    language = models.CharField(
        _("default language"),
        max_length=16,
        blank=True,
        help_text=_("For contacts without one. Empty: the install's LANGUAGE_CODE."),
    )
    # Keywords a contact may text back besides Twilio's own English ones (STOP, START, HELP...),
    # which always apply: the business's words in its customers' language (docs/delivery.md).
    sms_stop_keywords = models.CharField(
        _("SMS opt-out keywords"),
        max_length=300,
        blank=True,
        help_text=_("Comma-separated, for example ANNULLA, CANCELLA. Twilio's STOP always works."),
    )
    sms_start_keywords = models.CharField(
        _("SMS opt-in keywords"),
        max_length=300,
        blank=True,
        help_text=_("Comma-separated, for example ISCRIVIMI. Twilio's START always works."),
    )
    sms_help_keywords = models.CharField(
        _("SMS help keywords"),
        max_length=300,
        blank=True,
        help_text=_("Comma-separated, for example AIUTO. Twilio's HELP always works."),
    )

    class Meta:
        verbose_name = _("workspace")
        verbose_name_plural = _("workspaces")
        ordering = ["name"]
        permissions = [
            ("manage_members", _("Can add, change and remove the workspace's members")),
            ("manage_credentials", _("Can change the workspace's provider credentials")),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    MARKETER = "marketer", _("Marketer")
    PRIVACY = "privacy", _("Privacy officer")
    VIEWER = "viewer", _("Viewer")


class Membership(models.Model):
    """A user's one role in one workspace; a user may belong to several workspaces."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.workspace.slug} ({self.get_role_display()})"


class AuditOutcome(models.TextChoices):
    DONE = "done", _("Done")
    DENIED = "denied", _("Denied")


class AuditEvent(models.Model):
    """Who did what, append-only: a database trigger refuses UPDATE and DELETE.

    Written in the same transaction as the change it records; a refusal is recorded on its own.
    It names its target by type and id, never by personal data, so an erasure leaves it whole.
    """

    # Empty for install-wide actions (a manual outage declare, an operator's drill).
    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept when the user is deleted, and for actors that are not users ("api-key:abc12345").
    actor_label = models.CharField(_("actor"), max_length=200)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=AuditOutcome.choices, default=AuditOutcome.DONE
    )
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["workspace", "-at"], name="audit_by_workspace")]

    def __str__(self) -> str:
        outcome = self.get_outcome_display()
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} ({outcome})"


class ApiKey(AbstractAPIKey):
    """An API token: one user acting in one workspace, stored hashed, with expiry and revocation.

    A key without a workspace reaches only install-wide endpoints (an operator's outages).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")  # type: ignore[assignment]
        verbose_name_plural = _("API keys")  # type: ignore[assignment]


class RetentionPolicy(models.Model):
    """A workspace's own period for one kind of record (continuity/retention.py); a kind with no
    row here keeps the install's default (settings.RETENTION_DAYS)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", verbose_name=_("workspace")
    )
    kind = models.CharField(_("kind of record"), max_length=32)
    days = models.PositiveIntegerField(_("days kept"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("retention period")
        verbose_name_plural = _("retention periods")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "kind"], name="retention_one_per_kind"),
        ]
        permissions = [
            ("view_processing_records", _("Can view the workspace's records of processing")),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.days} days"


class RetentionProgress(models.Model):
    """Where the retention run stands for one kind: the id range of the pass in progress. Written
    in the same transaction as each batch it deleted, so an interrupted run resumes at the first
    row it did not delete. Bookkeeping only: every batch re-checks its rows' age itself."""

    kind = models.CharField(max_length=32, unique=True)
    after_id = models.BigIntegerField(default=0)
    upto_id = models.BigIntegerField(default=0)
    pass_started_at = models.DateTimeField(null=True, blank=True)
    last_batch_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    deleted_total = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.kind}: {self.after_id}/{self.upto_id}"
