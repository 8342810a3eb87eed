"""Pages and webhooks of the campaigns app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "campaigns"
urlpatterns: list[URLPattern | URLResolver] = []
