from django.apps import AppConfig


class ContinuityConfig(AppConfig):
    """Operational plumbing only (health, heartbeats, preflight): no business logic lives here."""

    name = "continuity"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Registers the `any_of` lookup on every field before any query is built.
        from continuity import sql  # noqa: F401
