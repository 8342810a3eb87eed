"""The campaigns app's API, mounted under /api/v1/ by continuity/urls.py."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
