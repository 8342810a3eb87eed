"""The outages app's API, mounted under /api/v1/ by continuity/urls.py."""

from django.urls import URLPattern, URLResolver, path

from outages import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("outages/", api.OutageListView.as_view(), name="outages-list"),
    path("outages/<int:pk>/", api.OutageDetailView.as_view(), name="outages-detail"),
    path("outages/<int:pk>/resolve/", api.OutageResolveView.as_view(), name="outages-resolve"),
]
