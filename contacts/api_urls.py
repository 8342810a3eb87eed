"""The contacts app's API, mounted under /api/v1/ by continuity/urls.py."""

from django.urls import URLPattern, URLResolver, path

from contacts import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("contacts/", api.ContactListCreate.as_view(), name="contacts-list"),
    path("contacts/bulk/", api.ContactBulkUpsert.as_view(), name="contacts-bulk"),
    path("contacts/<int:pk>/", api.ContactDetail.as_view(), name="contacts-detail"),
    path("contacts/<int:pk>/consent/", api.ContactConsent.as_view(), name="contacts-consent"),
    path(
        "contacts/<int:pk>/consent/history/",
        api.ContactConsentHistory.as_view(),
        name="contacts-consent-history",
    ),
    path("contacts/<int:pk>/export/", api.ContactExport.as_view(), name="contacts-export"),
    path("segments/", api.SegmentListCreate.as_view(), name="segments-list"),
    path("segments/<int:pk>/", api.SegmentDetail.as_view(), name="segments-detail"),
    path("segments/<int:pk>/count/", api.SegmentCount.as_view(), name="segments-count"),
]
