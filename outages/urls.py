"""Pages and webhooks of the outages app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from outages import views

app_name = "outages"
urlpatterns: list[URLPattern | URLResolver] = [
    path("hooks/monitors/<str:slug>/", views.monitor_webhook, name="monitor-webhook"),
]
