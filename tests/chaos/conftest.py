from tests.e2e.conftest import sendgrid_fake

__all__ = ["sendgrid_fake"]
