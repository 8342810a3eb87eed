"""Pages and webhooks of the contacts app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from contacts import views

app_name = "contacts"
urlpatterns: list[URLPattern | URLResolver] = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("push/subscribe/", views.push_subscribe, name="push-subscribe"),
    path("push/sw.js", views.service_worker, name="push-sw"),
]
