"""Pages and webhooks of the outages app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "outages"
urlpatterns: list[URLPattern | URLResolver] = []
