"""Pages and webhooks of the contacts app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "contacts"
urlpatterns: list[URLPattern | URLResolver] = []
