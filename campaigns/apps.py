from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # Signal receivers and the reroute tasks (Celery only autodiscovers tasks.py).
        from campaigns import receivers, reroute_tasks  # noqa: F401
