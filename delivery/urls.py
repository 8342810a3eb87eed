"""Pages and webhooks of the delivery app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "delivery"
urlpatterns: list[URLPattern | URLResolver] = []
