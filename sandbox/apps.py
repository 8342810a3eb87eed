from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SandboxConfig(AppConfig):
    """Loopback fakes of every provider, their inbox page and the demo seed.

    Installed only when SANDBOX_ENABLED (the demo, tests, DEBUG). Product apps never import it:
    it plugs itself in through its own urls (included by continuity/urls.py when the app is
    installed) and a template that adds its link to the Delivery changelist.
    """

    name = "sandbox"
    verbose_name = _("Sandbox")
