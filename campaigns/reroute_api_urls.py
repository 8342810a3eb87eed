"""The reroute engine's API, mounted under /api/v1/ by continuity/urls.py."""

from django.urls import URLPattern, URLResolver, path

from campaigns.reroute_api import (
    DrillView,
    RerouteListView,
    WindowReportView,
    WindowWorkspacesView,
)

urlpatterns: list[URLPattern | URLResolver] = [
    path("reroutes/", RerouteListView.as_view(), name="reroute-list"),
    path(
        "reroutes/windows/<int:window_id>/report/",
        WindowReportView.as_view(),
        name="reroute-window-report",
    ),
    path(
        "reroutes/windows/<int:window_id>/workspaces/",
        WindowWorkspacesView.as_view(),
        name="reroute-window-report-workspaces",
    ),
    path("drills/", DrillView.as_view(), name="drill"),
]
