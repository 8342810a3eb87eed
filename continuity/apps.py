from django.apps import AppConfig


class ContinuityConfig(AppConfig):
    """Operational plumbing only (health, heartbeats, demo setup): no business logic lives here."""

    name = "continuity"
    verbose_name = "Operations"
