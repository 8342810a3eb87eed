"""Screenshots of the marketer's key pages into docs/screens/, from the demo's data.

Seeds the demo if it is missing (sandbox.demo, idempotent), serves this project on a loopback
port of its own for the length of the command, signs the demo marketer in and photographs each
page in Debian's Chromium through Playwright (never `playwright install`), 1280 px wide. PNGs
are squeezed with optipng when it is installed (Debian's package).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management.base import BaseCommand, CommandError
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.utils import timezone

WIDTH, HEIGHT = 1280, 860
MARKETER = "marco"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class Command(BaseCommand):
    help = "Regenerate docs/screens/*.png: the composer, calendar, lists and outage pages."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--out", default=str(Path(settings.BASE_DIR) / "docs" / "screens"))
        parser.add_argument("--contacts", type=int, default=2000)

    def handle(self, *args: Any, out: str, contacts: int, **options: Any) -> None:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise CommandError("Chromium is not installed: apt-get install -y chromium")
        pages, cookie = self._prepare(contacts)
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        server = make_server(
            "127.0.0.1",
            0,
            StaticFilesHandler(get_wsgi_application()),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        base = f"http://127.0.0.1:{server.server_port}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            written = self._shoot(chromium, base, cookie, pages, target)
        finally:
            server.shutdown()
            server.server_close()
        optipng = shutil.which("optipng")
        if optipng:
            subprocess.run(  # noqa: S603 - a fixed tool on our own files  # nosec B603
                [optipng, "-quiet", "-o2", *map(str, written)], check=False
            )
        for path in written:
            self.stdout.write(f"{path} ({path.stat().st_size // 1024} KiB)")

    def _prepare(self, contacts: int) -> tuple[dict[str, str], str]:
        """Seed, pick the pages and sign the marketer in: every ORM call happens here, before
        Playwright starts its event loop in this thread."""
        from django.contrib.auth import get_user_model

        from campaigns.models import Campaign, CampaignStatus
        from contacts.models import Segment
        from continuity.admin_access import SESSION_KEY
        from outages.models import OutageWindow
        from sandbox.demo import DEMO_WORKSPACES, demo_seed

        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1", "testserver"]
        demo_seed(contacts=contacts)
        workspace_slug = DEMO_WORKSPACES[0].slug
        campaign = (
            Campaign.objects.filter(workspace__slug=workspace_slug)
            .order_by(
                # A draft or scheduled one shows the Schedule buttons and the live panels.
                "-status",
                "scheduled_at",
            )
            .filter(status__in=[CampaignStatus.DRAFT, CampaignStatus.SCHEDULED])
            .first()
            or Campaign.objects.filter(workspace__slug=workspace_slug).first()
        )
        segment = Segment.objects.filter(workspace__slug=workspace_slug).first()
        pages = {
            "campaign-list": "/admin/campaigns/campaign/",
            "calendar": "/admin/campaigns/campaign/calendar/",
            "contacts": "/admin/contacts/contact/",
            "dashboard": "/admin/campaigns/reroute/dashboard/",
        }
        if campaign is not None:
            pages["composer"] = f"/admin/campaigns/campaign/{campaign.pk}/change/"
        if segment is not None:
            pages["segment"] = f"/admin/contacts/segment/{segment.pk}/change/"
        if not OutageWindow.objects.exists():
            # One past, resolved outage so the calendar and the report have one to draw. Made
            # directly, not through outages.windows: no signal, so nothing reroutes for it.
            yesterday = timezone.now() - timedelta(days=1)
            OutageWindow.objects.create(
                network="instagram",
                state="resolved",
                opened_at=yesterday.replace(hour=10, minute=5),
                closed_at=yesterday.replace(hour=11, minute=40),
                opened_by="screenshots",
                reason="Example outage for the screenshots",
            )
        window = OutageWindow.objects.order_by("-opened_at").first()
        if window is not None:
            pages["report"] = f"/admin/campaigns/reroute/report/{window.pk}/"
        user = get_user_model().objects.filter(username=MARKETER).first()
        if user is None:
            raise CommandError(f"The demo marketer {MARKETER!r} is missing: run seed_demo.")
        client = Client()
        client.force_login(user)
        session = client.session
        session[SESSION_KEY] = campaign.workspace_id if campaign else session.get(SESSION_KEY)
        session.save()
        return pages, session.session_key or ""

    def _shoot(
        self, chromium: str, base: str, cookie: str, pages: dict[str, str], target: Path
    ) -> list[Path]:
        from playwright.sync_api import sync_playwright

        written = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": base}])
            page = context.new_page()
            for name, path in pages.items():
                page.goto(base + path, wait_until="networkidle")
                file = target / f"{name}.png"
                page.screenshot(path=str(file), full_page=False)
                written.append(file)
                if name == "composer":
                    # The plan, audience and preview, lower on the same page.
                    plan = target / "composer-plan.png"
                    page.locator("#composer-audience").scroll_into_view_if_needed()
                    page.wait_for_timeout(1500)  # the audience panel fills itself in
                    page.screenshot(path=str(plan), full_page=False)
                    written.append(plan)
            browser.close()
        return written
