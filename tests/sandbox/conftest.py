"""The fakes on free loopback ports, fresh for each test (the delivery tests' fixtures)."""

from tests.delivery.conftest import sendgrid_fake, sink, twilio_fake  # noqa: F401 - fixtures
