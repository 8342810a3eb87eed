"""The campaigns app's API, mounted under /api/v1/ by continuity/urls.py."""

from django.urls import URLPattern, URLResolver, path

from campaigns import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("campaigns/", api.CampaignListCreate.as_view(), name="campaigns-list"),
    path("campaigns/<int:pk>/", api.CampaignDetail.as_view(), name="campaigns-detail"),
    path(
        "campaigns/<int:pk>/schedule/",
        api.CampaignScheduleView.as_view(),
        name="campaigns-schedule",
    ),
    path("campaigns/<int:pk>/cancel/", api.CampaignCancelView.as_view(), name="campaigns-cancel"),
    path(
        "campaigns/<int:pk>/publish-now/",
        api.CampaignPublishNowView.as_view(),
        name="campaigns-publish-now",
    ),
    path("campaigns/<int:pk>/status/", api.CampaignStatusView.as_view(), name="campaigns-status"),
    path(
        "campaigns/<int:pk>/test-send/",
        api.CampaignTestSendView.as_view(),
        name="campaigns-test-send",
    ),
]
