"""Run every sandbox provider on its fixed loopback port and block (``make run`` / Procfile)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from sandbox.base import FakeServer
from sandbox.demo import DEMO_X_USERS
from sandbox.demo_push import demo_subscriptions_enable
from sandbox.event_keys import sandbox_event_keys_ensure
from sandbox.graph import GraphFake
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from sandbox.x import XFake

FAKES = ("sendgrid", "failover", "twilio", "push", "graph", "x")


def sandbox_event_signing_key() -> str:
    """The key the SendGrid fake signs events with: configured, the demo pair's, or "" (per run).

    The demo pair is normally written by `manage.py seed_demo` before the web process starts;
    writing it here too keeps `manage.py sandbox` usable on its own.
    """
    if settings.SANDBOX_SENDGRID_EVENT_SIGNING_KEY or not settings.SANDBOX_SENDGRID_DEMO_EVENTS:
        return str(settings.SANDBOX_SENDGRID_EVENT_SIGNING_KEY)
    pem, _ = sandbox_event_keys_ensure(
        private_path=settings.SANDBOX_SENDGRID_DEMO_KEY_FILE,
        public_path=settings.SANDBOX_SENDGRID_DEMO_PUBLIC_KEY_FILE,
    )
    return pem


def sandbox_fakes_build(*, only: tuple[str, ...] = FAKES) -> dict[str, FakeServer]:
    """The fakes as settings configure them: the same keys and ports the app is pointed at."""
    host = settings.SANDBOX_HOST
    fakes: dict[str, FakeServer] = {}
    if "sendgrid" in only:
        fakes["sendgrid"] = SendGridFake(
            host=host,
            port=settings.SANDBOX_SENDGRID_PORT,
            api_key=str(settings.ANYMAIL["SENDGRID_API_KEY"]),
            signing_key_pem=sandbox_event_signing_key(),
            events_url=settings.SANDBOX_SENDGRID_EVENTS_URL,
        )
    if "failover" in only:
        fakes["failover"] = SendGridFake(
            host=host,
            port=settings.SANDBOX_FAILOVER_ESP_PORT,
            api_key=str(settings.DELIVERY_EMAIL_FAILOVER_OPTIONS["api_key"]),
            # Its own account, its own key: the public half is what
            # DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY must hold.
            signing_key_pem=settings.SANDBOX_FAILOVER_EVENT_SIGNING_KEY,
            events_url=settings.SANDBOX_FAILOVER_EVENTS_URL,
        )
    if "twilio" in only:
        fakes["twilio"] = TwilioFake(
            host=host,
            port=settings.SANDBOX_TWILIO_PORT,
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
        )
    if "push" in only:
        push = PushServiceFake(host=host, port=settings.SANDBOX_PUSH_PORT)
        demo_subscriptions_enable(push)
        fakes["push"] = push
    if "graph" in only:
        fakes["graph"] = GraphFake(
            host=host, port=settings.SANDBOX_GRAPH_PORT, version=settings.SOCIAL_GRAPH_API_VERSION
        )
    if "x" in only:
        x = XFake(host=host, port=settings.SANDBOX_X_PORT)
        # The demo workspaces' X accounts (sandbox/demo.py): each token maps to its user id.
        for token, user_id, username in DEMO_X_USERS:
            x.add_user(token, user_id, username)
        fakes["x"] = x
    return fakes


class Command(BaseCommand):
    help = "Start the loopback provider fakes (email, SMS, push, Graph, X) and block."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--only", nargs="+", choices=FAKES, default=list(FAKES), help="fakes to start"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        fakes = sandbox_fakes_build(only=tuple(options["only"]))
        for name, fake in fakes.items():
            fake.start()
            self.stdout.write(f"sandbox {name} listening on {fake.url}")
        sendgrid = fakes.get("sendgrid")
        if isinstance(sendgrid, SendGridFake) and not (
            settings.SANDBOX_SENDGRID_EVENT_SIGNING_KEY or settings.SANDBOX_SENDGRID_DEMO_EVENTS
        ):
            self.stdout.write(
                "sandbox sendgrid signs events with a key generated for this run; its public "
                f"half is SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY={sendgrid.verification_key}"
            )
        failover = fakes.get("failover")
        if isinstance(failover, SendGridFake) and not settings.SANDBOX_FAILOVER_EVENT_SIGNING_KEY:
            self.stdout.write(
                "sandbox failover signs events with a key generated for this run; its public half "
                "is DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY="
                f"{failover.verification_key}"
            )
        self.stdout.write("sandbox ready")
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            for fake in fakes.values():
                fake.stop()
            self.stdout.write("sandbox stopped")
