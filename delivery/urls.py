"""Pages and webhooks of the delivery app (mounted at the site root by continuity/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from delivery import webhooks

app_name = "delivery"
urlpatterns: list[URLPattern | URLResolver] = [
    path("webhooks/sendgrid/events/", webhooks.sendgrid_events, name="sendgrid-events"),
    path("webhooks/twilio/status/", webhooks.twilio_status, name="twilio-status"),
    path("webhooks/twilio/inbound/", webhooks.twilio_inbound, name="twilio-inbound"),
]
