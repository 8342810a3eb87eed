"""The Content-Security-Policy, seen by a real browser: every page of the admin, the API docs and
the public pages renders under it with no violation in the console (a blocked inline style or
script would be one), and the docs really draw themselves with nothing from another origin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from contacts.links import SALT_PREFERENCES, SALT_UNSUBSCRIBE, token_make
from contacts.models import Channel
from tests.browser import (  # noqa: F401 - the fixtures
    Browser,
    browser,
    chromium_path,
    console_messages,
    sign_in,
)
from tests.campaigns.test_reroute_reports import rerouted_window
from tests.contacts.factories import make_contact

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(300)]


def _violations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m]


def _visit(tab: Browser, url: str, *, ready: str | None = None) -> list[str]:
    page = tab.page
    page.goto(url)
    problems = []
    if ready:
        try:
            page.wait_for_selector(ready, state="attached", timeout=30_000)
        except PlaywrightTimeout:
            text = page.inner_text("body")[:300]
            problems.append(f"{ready!r} never appeared on {page.title()!r}: {text!r}")
    origin = url.split("/", 3)[:3]
    for resource in page.evaluate("performance.getEntriesByType('resource').map(e => e.name)"):
        if resource.split("/", 3)[:3] != origin:
            problems.append(f"loaded from another origin: {resource}")
    return problems + _violations(console_messages(tab))


def test_admin_docs_and_public_pages_render_under_the_policy_without_a_violation(
    browser: Browser,  # noqa: F811 - the fixture imported above
    live_server: Any,
    admin_client: Client,
    settings: Any,
) -> None:
    window_id = rerouted_window(settings)  # an open outage: the red banner is on every page
    contact = make_contact()
    sign_in(browser, base_url=live_server.url, session_key=admin_client.cookies["sessionid"].value)
    from campaigns.models import Campaign

    campaign = Campaign.objects.order_by("pk").last()
    assert campaign is not None
    pages: dict[str, tuple[str, str | None]] = {
        "admin index": ("/admin/", ".outages-banner"),
        "contacts": ("/admin/contacts/contact/", "#changelist"),
        "campaign editor": (f"/admin/campaigns/campaign/{campaign.pk}/change/", "iframe"),
        "campaign calendar": ("/admin/campaigns/campaign/calendar/", ".campaign-calendar"),
        "segment editor": ("/admin/contacts/segment/add/", ".segment-rules"),
        "reroute dashboard": ("/admin/campaigns/reroute/dashboard/", None),
        "window report": (f"/admin/campaigns/reroute/report/{window_id}/", "svg"),
        "outage windows": ("/admin/outages/outagewindow/", "#changelist"),
        "swagger": ("/api/docs/", ".swagger-ui .info"),
        "redoc": ("/api/redoc/", "[role=search], .api-content"),
        "unsubscribe page": (
            "/u/"
            + token_make(salt=SALT_UNSUBSCRIBE, contact_id=contact.pk, channel=Channel.EMAIL)
            + "/",
            "form",
        ),
        "preference centre": (
            "/preferences/" + token_make(salt=SALT_PREFERENCES, contact_id=contact.pk) + "/",
            "form",
        ),
    }
    found = {
        name: _visit(browser, live_server.url + path, ready=ready)
        for name, (path, ready) in pages.items()
    }
    # Redoc's footer asks a CDN for the Redocly logo: the policy refuses it, which is the point.
    redoc_logo = [v for v in found.pop("redoc") if "cdn.redoc.ly/redoc/logo-mini.svg" not in v]
    assert {name: v for name, v in found.items() if v} == {}
    assert redoc_logo == []
    # The styles moved out of the pages still apply: the outage banner is red.
    browser.page.goto(live_server.url + "/admin/")
    colour = browser.page.eval_on_selector(
        ".outages-banner", "e => getComputedStyle(e).backgroundColor"
    )
    assert colour == "rgb(186, 33, 33)"
