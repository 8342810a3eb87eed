from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        # Signal receivers, the reroute tasks (Celery only autodiscovers tasks.py) and the
        # reroute admin (kept apart from the campaign editor in admin.py).
        from campaigns import receivers, reroute_admin, reroute_tasks  # noqa: F401
