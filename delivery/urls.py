"""Pages and webhooks of the delivery app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from delivery import webhooks

app_name = "delivery"
urlpatterns: list[URLPattern | URLResolver] = [
    path("webhooks/sendgrid/events/", webhooks.sendgrid_events, name="sendgrid-events"),
    # The failover ESP is the install's alone (workspaces' own SendGrid accounts fail over to
    # it too), so its webhook has one URL and one key.
    path("webhooks/failover/events/", webhooks.failover_events, name="failover-events"),
    path("webhooks/twilio/status/", webhooks.twilio_status, name="twilio-status"),
    path("webhooks/whatsapp/", webhooks.whatsapp_events, name="whatsapp-events"),
    path("webhooks/twilio/inbound/", webhooks.twilio_inbound, name="twilio-inbound"),
    # A workspace's own accounts call these: the id picks the secret that verifies the request.
    path(
        "webhooks/sendgrid/events/<int:workspace_id>/",
        webhooks.sendgrid_events,
        name="sendgrid-events-workspace",
    ),
    path(
        "webhooks/twilio/status/<int:workspace_id>/",
        webhooks.twilio_status,
        name="twilio-status-workspace",
    ),
    path(
        "webhooks/twilio/inbound/<int:workspace_id>/",
        webhooks.twilio_inbound,
        name="twilio-inbound-workspace",
    ),
]
