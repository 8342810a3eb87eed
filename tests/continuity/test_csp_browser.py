"""The Content-Security-Policy, seen by a real browser: every page of the admin, the API docs and
the public pages renders under it with no violation in the console (a blocked inline style or
script would be one), and the docs really draw themselves with nothing from another origin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from contacts.links import SALT_PREFERENCES, SALT_UNSUBSCRIBE, token_make
from contacts.models import Channel
from tests.browser import browser, console_messages, sign_in  # noqa: F401 - the fixture
from tests.campaigns.test_reroute_reports import rerouted_window
from tests.contacts.factories import make_contact

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _violations(messages: list[dict[str, Any]]) -> list[str]:
    return [m["message"] for m in messages if "Content Security Policy" in m["message"]]


def _visit(driver: Any, url: str, *, ready: tuple[str, str] | None = None) -> list[str]:
    driver.get(url)
    problems = []
    if ready:
        try:
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(*ready))
        except TimeoutException:
            text = driver.find_element(By.TAG_NAME, "body").text[:300]
            problems.append(f"{ready[1]!r} never appeared on {driver.title!r}: {text!r}")
    origin = url.split("/", 3)[:3]
    for resource in driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    ):
        if resource.split("/", 3)[:3] != origin:
            problems.append(f"loaded from another origin: {resource}")
    return problems + _violations(console_messages(driver))


def test_admin_docs_and_public_pages_render_under_the_policy_without_a_violation(
    browser: Any,  # noqa: F811 - the fixture imported above
    live_server: Any,
    admin_client: Client,
    settings: Any,
) -> None:
    window_id = rerouted_window(settings)  # an open outage: the red banner is on every page
    contact = make_contact()
    sign_in(browser, base_url=live_server.url, session_key=admin_client.cookies["sessionid"].value)
    console_messages(browser)
    from campaigns.models import Campaign

    campaign = Campaign.objects.order_by("pk").last()
    assert campaign is not None
    pages: dict[str, tuple[str, tuple[str, str] | None]] = {
        "admin index": ("/admin/", (By.CLASS_NAME, "outages-banner")),
        "contacts": ("/admin/contacts/contact/", (By.ID, "changelist")),
        "campaign editor": (
            f"/admin/campaigns/campaign/{campaign.pk}/change/",
            (By.TAG_NAME, "iframe"),
        ),
        "reroute dashboard": ("/admin/campaigns/reroute/dashboard/", None),
        "window report": (f"/admin/campaigns/reroute/report/{window_id}/", (By.TAG_NAME, "svg")),
        "outage windows": ("/admin/outages/outagewindow/", (By.ID, "changelist")),
        "swagger": ("/api/docs/", (By.CSS_SELECTOR, ".swagger-ui .info")),
        "redoc": ("/api/redoc/", (By.CSS_SELECTOR, "[role=search], .api-content")),
        "unsubscribe page": (
            "/u/"
            + token_make(salt=SALT_UNSUBSCRIBE, contact_id=contact.pk, channel=Channel.EMAIL)
            + "/",
            (By.TAG_NAME, "form"),
        ),
        "preference centre": (
            "/preferences/" + token_make(salt=SALT_PREFERENCES, contact_id=contact.pk) + "/",
            (By.TAG_NAME, "form"),
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
    browser.get(live_server.url + "/admin/")
    banner = browser.find_element(By.CLASS_NAME, "outages-banner")
    assert banner.value_of_css_property("background-color") == "rgba(186, 33, 33, 1)"
