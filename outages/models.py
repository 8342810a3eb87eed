"""Monitor sources, their receipts, and the outage windows their signals hold open."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from outages.networks import network_choices


class SourceKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", _("Prometheus Alertmanager")
    GRAFANA = "grafana", _("Grafana alerting")
    UPTIME_KUMA = "uptime_kuma", _("Uptime Kuma")
    STATUSPAGE = "statuspage", _("Atlassian Statuspage / Instatus")
    PAGERDUTY = "pagerduty", _("PagerDuty (v3 webhooks)")
    DATADOG = "datadog", _("Datadog")
    BETTERSTACK = "betterstack", _("Better Stack Uptime")
    GENERIC = "generic", _("Generic (Continuity signed JSON)")


class MonitorSource(models.Model):
    """One monitor that may call us, at POST /hooks/monitors/<slug>/."""

    name = models.CharField(max_length=200, verbose_name=_("name"))
    slug = models.SlugField(max_length=80, unique=True, verbose_name=_("slug"))
    kind = models.CharField(max_length=32, choices=SourceKind.choices, verbose_name=_("kind"))
    mapping_rules = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            'List of rules, first match wins: {"match": "labels.service", "equals": '
            '"instagram", "network": "instagram"} or {"match": "monitor.name", '
            '"regex": "(?i)insta", "network": "instagram"}.'
        ),
        verbose_name=_("mapping rules"),
    )
    default_network = models.CharField(
        max_length=32,
        choices=network_choices,
        blank=True,
        help_text=_("Used when no rule matches."),
        verbose_name=_("default network"),
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=_(
            "Kind-specific options, e.g. Grafana "
            '{"timestamp_header": "X-Grafana-Alerting-Timestamp"}.'
        ),
        verbose_name=_("options"),
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))
    repeat_interval_s = models.PositiveIntegerField(
        _("repeat interval"),
        null=True,
        blank=True,
        help_text=_(
            "How often the sender repeats a firing alert, in seconds (Alertmanager's "
            "repeat_interval, Uptime Kuma's resend interval x heartbeat interval). Empty: the "
            "kind's default (Alertmanager and Grafana 14400, the others do not repeat). 0: never "
            "repeats. "
            "An alert silent for twice this long is 'no news from the monitor'."
        ),
    )
    silence_auto_close = models.BooleanField(
        _("close when silent"),
        default=False,
        help_text=_(
            "Close an outage window when every alert holding it has been silent past its "
            "limit (a lost resolve must not hold a network down for good)."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("monitor source")
        verbose_name_plural = _("monitor sources")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("outages:monitor-webhook", kwargs={"slug": self.slug})


class MonitorCredential(models.Model):
    """A source's secret, encrypted at rest. Rotation adds one and lets the old one expire later."""

    source = models.ForeignKey(
        MonitorSource,
        on_delete=models.CASCADE,
        related_name="credentials",
        verbose_name=_("source"),
    )
    secret_encrypted = models.TextField(verbose_name=_("secret encrypted"))
    hint = models.CharField(
        max_length=8, help_text=_("Last characters, to tell secrets apart."), verbose_name=_("hint")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))

    class Meta:
        verbose_name = _("monitor credential")
        verbose_name_plural = _("monitor credentials")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"…{self.hint}"


class Verdict(models.TextChoices):
    RECEIVED = "received", _("Received (processing did not finish)")
    ACCEPTED = "accepted", _("Accepted")
    IGNORED = "ignored", _("Accepted, nothing to do")
    DUPLICATE = "duplicate", _("Accepted, a redelivery already processed")
    UNMAPPED = "unmapped", _("Accepted, maps to no network")
    NOT_FOUND = "not_found", _("Unknown source")
    METHOD_NOT_ALLOWED = "method_not_allowed", _("Wrong method")
    TOO_LARGE = "too_large", _("Body too large")
    MALFORMED = "malformed", _("Malformed body")
    INVALID = "invalid", _("Missing fields")
    UNAUTHORIZED = "unauthorized", _("Bad credentials")
    REPLAYED = "replayed", _("Replayed or stale delivery")
    ERROR = "error", _("Server error")


class WebhookReceipt(models.Model):
    """Every request to /hooks/monitors/, stored before anything else so nothing is lost."""

    source = models.ForeignKey(
        MonitorSource,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="receipts",
        verbose_name=_("source"),
    )
    slug = models.CharField(max_length=200, verbose_name=_("slug"))
    method = models.CharField(max_length=16, verbose_name=_("method"))
    headers = models.JSONField(default=dict, verbose_name=_("headers"))
    query = models.TextField(blank=True, verbose_name=_("query"))
    body = models.TextField(blank=True, verbose_name=_("body"))
    body_truncated = models.BooleanField(default=False, verbose_name=_("body truncated"))
    size = models.PositiveIntegerField(default=0, verbose_name=_("size"))
    verdict = models.CharField(
        max_length=24, choices=Verdict.choices, default=Verdict.RECEIVED, verbose_name=_("verdict")
    )
    status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("status code")
    )
    reason = models.TextField(blank=True, verbose_name=_("reason"))
    signals = models.JSONField(default=list, blank=True, verbose_name=_("signals"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )

    class Meta:
        verbose_name = _("webhook receipt")
        verbose_name_plural = _("webhook receipts")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.slug} {self.method} {self.status_code or '-'} {self.get_verdict_display()}"


class DeliverySeen(models.Model):
    """Delivery ids already processed (PagerDuty X-Webhook-Id, generic signatures): replays."""

    source = models.ForeignKey(MonitorSource, on_delete=models.CASCADE, verbose_name=_("source"))
    delivery_id = models.CharField(max_length=200, verbose_name=_("delivery id"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )

    class Meta:
        verbose_name = _("delivery seen")
        verbose_name_plural = _("delivery seens")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "delivery_id"], name="outages_delivery_seen_once"
            )
        ]

    def __str__(self) -> str:
        return self.delivery_id


class WindowState(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class OpenedBy(models.TextChoices):
    MONITOR = "monitor", _("Monitor source")
    MANUAL = "manual", _("Manual declaration")
    SELF_DETECTED = "self_detected", _("Our own publishing failures")


class OutageWindow(models.Model):
    """A period during which a network counts as down. At most one open window per network."""

    network = models.CharField(max_length=32, choices=network_choices, verbose_name=_("network"))
    state = models.CharField(
        max_length=16,
        choices=WindowState.choices,
        default=WindowState.OPEN,
        verbose_name=_("state"),
    )
    opened_at = models.DateTimeField(verbose_name=_("opened at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    opened_by = models.CharField(
        max_length=16, choices=OpenedBy.choices, verbose_name=_("opened by")
    )
    opened_by_source = models.ForeignKey(
        MonitorSource,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("opened by source"),
    )
    opened_by_ref = models.CharField(max_length=200, blank=True, verbose_name=_("opened by ref"))
    reason = models.TextField(blank=True, verbose_name=_("reason"))
    closed_by = models.CharField(max_length=200, blank=True, verbose_name=_("closed by"))
    close_reason = models.TextField(blank=True, verbose_name=_("close reason"))
    reopen_count = models.PositiveIntegerField(default=0, verbose_name=_("reopen count"))

    class Meta:
        verbose_name = _("outage window")
        verbose_name_plural = _("outage windows")
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["network"],
                condition=Q(state="open"),
                name="outages_one_open_window_per_network",
            ),
            models.CheckConstraint(
                condition=Q(state="open", closed_at__isnull=True)
                | Q(state="resolved", closed_at__isnull=False),
                name="outages_window_closed_at_matches_state",
            ),
        ]
        indexes = [models.Index(fields=["network", "-closed_at"], name="outages_win_net_closed")]

    def __str__(self) -> str:
        return str(_("%(network)s outage #%(id)s (%(state)s)")) % {
            "network": self.get_network_display(),
            "id": self.pk,
            "state": self.get_state_display(),
        }

    @property
    def is_open(self) -> bool:
        return self.state == WindowState.OPEN


class SignalState(models.TextChoices):
    FIRING = "firing", _("Firing")
    RESOLVED = "resolved", _("Resolved")


class OutageSignal(models.Model):
    """One incident from one origin (source + incident key) and whether it holds a window open.

    A resolved that arrives first is stored with no window, so the late firing is recognised.
    """

    network = models.CharField(max_length=32, choices=network_choices, verbose_name=_("network"))
    source_kind = models.CharField(
        max_length=16, choices=OpenedBy.choices, verbose_name=_("source kind")
    )
    source = models.ForeignKey(
        MonitorSource,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="signals",
        verbose_name=_("source"),
    )
    source_ref = models.CharField(max_length=200, verbose_name=_("source ref"))
    incident_key = models.CharField(max_length=255, verbose_name=_("incident key"))
    window = models.ForeignKey(
        OutageWindow,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="holds",
        verbose_name=_("window"),
    )
    state = models.CharField(max_length=16, choices=SignalState.choices, verbose_name=_("state"))
    started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("started at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))
    summary = models.TextField(blank=True, verbose_name=_("summary"))
    link = models.TextField(blank=True, verbose_name=_("link"))
    notifications = models.PositiveIntegerField(default=1, verbose_name=_("notifications"))
    first_seen_at = models.DateTimeField(auto_now_add=True, verbose_name=_("first seen at"))
    last_seen_at = models.DateTimeField(auto_now=True, verbose_name=_("last seen at"))

    class Meta:
        verbose_name = _("outage signal")
        verbose_name_plural = _("outage signals")
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "source_ref", "incident_key", "network"],
                name="outages_one_signal_per_origin_incident",
            )
        ]
        indexes = [models.Index(fields=["window", "state"], name="outages_sig_window_state")]

    def __str__(self) -> str:
        return (
            f"{self.source_ref}:{self.incident_key} → {self.network} ({self.get_state_display()})"
        )


class WindowEvent(models.Model):
    """Audit trail of a window's transitions, written in the same transaction as the change."""

    class Kind(models.TextChoices):
        OPENED = "opened", _("Opened")
        REOPENED = "reopened", _("Reopened (flap damping)")
        RELEASED = "released", _("A signal resolved")
        CLOSED = "closed", _("Closed")

    window = models.ForeignKey(
        OutageWindow, on_delete=models.CASCADE, related_name="events", verbose_name=_("window")
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, verbose_name=_("kind"))
    at = models.DateTimeField(auto_now_add=True, verbose_name=_("at"))
    actor = models.CharField(max_length=200, blank=True, verbose_name=_("actor"))
    detail = models.TextField(blank=True, verbose_name=_("detail"))

    class Meta:
        verbose_name = _("window event")
        verbose_name_plural = _("window events")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return str(_("%(kind)s by %(actor)s")) % {
            "kind": self.get_kind_display(),
            "actor": self.actor,
        }


class NetworkLock(models.Model):
    """One row per network, locked FOR UPDATE to serialise every window change on that network."""

    network = models.CharField(max_length=32, primary_key=True, verbose_name=_("network"))

    class Meta:
        verbose_name = _("network lock")
        verbose_name_plural = _("network locks")

    def __str__(self) -> str:
        return self.network
