"""Pages and webhooks of the contacts app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from contacts import views

app_name = "contacts"
urlpatterns: list[URLPattern | URLResolver] = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("u/<str:token>/preferences/", views.unsubscribe_manage, name="unsubscribe-manage"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/email/<str:token>/", views.email_change, name="email-change"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("push/<slug:workspace_slug>/subscribe/", views.push_subscribe, name="push-subscribe"),
    # Snippets published before workspaces: a token names the contact, hence the workspace.
    path("push/subscribe/", views.push_subscribe, name="push-subscribe-token"),
    path("push/sw.js", views.service_worker, name="push-sw"),
]
