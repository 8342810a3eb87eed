import warnings

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = _("Deliveries")

    def ready(self) -> None:
        from anymail.exceptions import AnymailNotSupportedWarning

        # anymail no longer officially supports SendGrid and warns on every backend and webhook
        # instance. We use it deliberately (see the settings block); the check anymail.W003 is
        # silenced in settings for the same reason. Other anymail warnings stay visible.
        warnings.filterwarnings("ignore", category=AnymailNotSupportedWarning)
