import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "continuity.settings")
application = get_asgi_application()

# As in wsgi.py: with DEBUG off, a deploy error stops the app from loading.
from continuity.checks import start_refuse_if_insecure  # noqa: E402

start_refuse_if_insecure()
