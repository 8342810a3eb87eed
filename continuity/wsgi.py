import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "continuity.settings")
application = get_wsgi_application()

# gunicorn never runs the system checks: with DEBUG off, a deploy error (a missing or
# sandbox-valued secret) stops the app from loading, with the messages `check --deploy` prints.
from continuity.checks import start_refuse_if_insecure  # noqa: E402

start_refuse_if_insecure()
