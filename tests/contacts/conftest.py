from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client


@pytest.fixture
def admin_client(owner_client: Client) -> Client:
    """This app's admin tests act as the workspace's owner, not as a superuser."""
    return owner_client


class NoDjangoMailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise AssertionError("a contact's mail went through Django's EMAIL_BACKEND")


@pytest.fixture(autouse=True)
def system_mail_sent_at_once(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """System mails leave through the email channel's task (delivery/system_mail.py): here the
    task runs in-process on commit, with anymail's test backend, which collects every mail in
    django.core.mail.outbox as the tests of these pages read them. tests/delivery/
    test_system_mail.py sends them to the SendGrid fake through a real worker."""
    from delivery import system_mail
    from delivery.senders import channel_sender

    settings.DELIVERY_EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    # Django's own mail API is SMTP on localhost:25 in production: nothing here may use it.
    settings.EMAIL_BACKEND = "tests.contacts.conftest.NoDjangoMailBackend"
    settings.DELIVERY_EMAIL_FAILOVER_BACKEND = ""
    channel_sender.cache_clear()

    def send_now(*, delivery_id: int, countdown: float = 0.0) -> bool:
        system_mail.system_mail_send(delivery_id=delivery_id)
        return True

    monkeypatch.setattr(system_mail, "system_mail_enqueue", send_now)
    yield
    channel_sender.cache_clear()
