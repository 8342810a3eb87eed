"""A marketer in a real browser: composes a campaign on one page, previews it as a contact,
sends herself a test, schedules it, and after a monitor reports an outage reads the dashboard
and the window report; the key pages have no serious or critical accessibility violation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignStatus
from contacts.consent import Evidence, consent_grant
from contacts.models import Channel, Purpose
from continuity.models import Role
from delivery.models import Delivery, MessageVariant
from outages.models import OutageWindow
from sandbox.sendgrid import SendGridFake
from tests.browser import Browser, browser, chromium_path, sign_in  # noqa: F401 - fixtures
from tests.campaigns.factories import make_account, make_message, make_segment
from tests.contacts.factories import make_contact
from tests.outages.factories import auth_for, sample_bytes, source_create
from tests.workspaces import make_member, workspace_for_tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]
SERIOUS = ("serious", "critical")
PAGE_CONSOLE: list[str] = []


def _axe_serious(tab: Browser, *, skip: tuple[str, ...] = ()) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    rules = {rule: {"enabled": False} for rule in skip}
    # What the page itself logged is kept; what axe's own injected code trips (it applies
    # inline styles, which the CSP refuses) is dropped.
    PAGE_CONSOLE.extend(tab.console_take())
    results = Axe().run(tab.page, options={"resultTypes": ["violations"], "rules": rules})
    tab.console_take()
    return [
        f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


def test_a_marketer_composes_previews_tests_schedules_and_watches_an_outage(
    browser: Browser,  # noqa: F811 - the fixture imported above
    live_server: Any,
    sendgrid: SendGridFake,
    settings: Any,
) -> None:
    workspace = workspace_for_tests()
    account = make_account(network="instagram", display_name="Shop on Instagram")
    segment = make_segment(name="Newsletter readers")
    fallback = make_message(name="Autumn fallback")
    MessageVariant.objects.create(
        workspace=workspace,
        message=fallback,
        language="it",
        email_subject="Saldi d'autunno, {{ first_name }}",
        email_text="Ciao {{ first_name }}, i saldi sono iniziati.",
        sms_text="Ciao {{ first_name }}: saldi oggi.",
    )
    giulia = make_contact(first_name="Giulia", email="giulia@example.com")
    consent_grant(
        contact=giulia,
        channel=Channel.EMAIL,
        purpose=Purpose.MARKETING,
        evidence=Evidence(source="admin", source_detail="test"),
    )
    client = Client()
    client.force_login(make_member(workspace=workspace, role=Role.MARKETER))
    sign_in(browser, base_url=live_server.url, session_key=client.cookies["sessionid"].value)
    page = browser.page
    axe: dict[str, list[str]] = {}

    # Compose, as a marketer fills the form.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    axe["composer (new)"] = _axe_serious(browser)
    due = timezone.localtime(timezone.now() + timedelta(hours=3))
    page.fill("#id_name", "Autumn sale")
    page.fill("#id_scheduled_at_0", due.strftime("%Y-%m-%d"))
    page.fill("#id_scheduled_at_1", due.strftime("%H:%M:%S"))
    page.get_by_label("Instagram: Shop on Instagram").check()
    page.fill("#id_text", "Autumn sale starts now")
    page.fill("#id_image_url", "https://cdn.example.com/autumn.jpg")
    page.select_option("#id_segment", label="Newsletter readers")
    page.select_option("#id_message", label="Autumn fallback")
    page.get_by_label("Email", exact=True).check()
    page.get_by_label("SMS", exact=True).check()
    # Each wait shows only with its policy.
    expect(page.locator(".field-max_hold_minutes")).to_be_hidden()
    page.get_by_label("Hold, publish when the network is back").check()
    expect(page.locator(".field-max_hold_minutes")).to_be_visible()
    expect(page.locator(".field-hold_then_reroute_minutes")).to_be_hidden()
    page.get_by_label("Reroute to owned channels").check()
    # Email before push: the order is what the page shows when saved.
    page.get_by_role("button", name="Move Email up").click()
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    campaign = Campaign.objects.get(name="Autumn sale")
    assert campaign.fallback_channels == ["email", "sms"]
    assert list(campaign.accounts.all()) == [account]
    assert campaign.segment == segment

    # The audience per channel arrives on its own.
    page.wait_for_selector(".composer-forecast")
    assert "1 gets an email" in page.inner_text("#composer-audience")

    # Preview as a contact picked by name.
    page.fill("#composer-contact", "Giu")
    # Waits use locators, never a JavaScript string: the CSP forbids eval, even to a test.
    page.wait_for_selector("#composer-contact-list option", state="attached")
    label = page.eval_on_selector("#composer-contact-list option", "o => o.value")
    page.fill("#composer-contact", label)
    page.click(".composer-preview-refresh")
    expect(page.locator("#composer-previews")).to_contain_text("As Giulia")
    expect(page.locator("#composer-previews")).to_contain_text("Hello Giulia")
    axe["composer (saved)"] = _axe_serious(browser)
    # The same contact in Italian: the preview follows the language picked, and so does the test.
    page.select_option("#composer-preview-language", "it")
    expect(page.locator("#composer-previews")).to_contain_text("Ciao Giulia: saldi oggi.")
    expect(page.locator("#composer-test-language")).to_have_value("it")

    # Send me a test by email, in the language picked.
    page.select_option("#composer-test-channel", "email")
    page.fill("#composer-test-address", "marketer@example.com")
    page.click(".composer-test-button")
    page.wait_for_selector(".composer-test-result.composer-ok")
    assert sendgrid.personalizations[0].to == ["marketer@example.com"]
    assert sendgrid.personalizations[0].subject.startswith("[TEST] Saldi d'autunno")
    assert Delivery.objects.count() == 0

    # Schedule from the form.
    page.click("input[name=_schedule]")
    page.wait_for_selector(".messagelist .success")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED

    # The calendar shows it on its day.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/calendar/?view=week")
    assert "Autumn sale" in page.inner_text(".campaign-calendar")
    axe["calendar"] = _axe_serious(browser)

    # A monitor reports Instagram down through its webhook.
    source = source_create(kind="uptime_kuma", default_network="instagram")
    body = sample_bytes("uptime_kuma", "down")
    headers, _query = auth_for(kind="uptime_kuma", body=body)
    answer = requests.post(
        f"{live_server.url}/hooks/monitors/{source.slug}/",
        data=body,
        headers={
            "Authorization": headers["HTTP_AUTHORIZATION"],
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert answer.status_code < 300, answer.text
    window = OutageWindow.objects.get(closed_at__isnull=True)

    page.goto(f"{live_server.url}/admin/campaigns/reroute/dashboard/")
    assert "down since" in page.inner_text("#content")
    # The live dashboard refreshes itself every 5 s by design (a wall screen during an outage).
    axe["dashboard"] = _axe_serious(browser, skip=("meta-refresh",))
    page.goto(f"{live_server.url}/admin/campaigns/reroute/report/{window.pk}/")
    assert page.locator("#content").count() == 1
    axe["report"] = _axe_serious(browser)
    page.goto(f"{live_server.url}/admin/contacts/segment/add/")
    axe["segment builder"] = _axe_serious(browser)
    page.goto(f"{live_server.url}/admin/contacts/contact/")
    axe["contacts"] = _axe_serious(browser)

    serious = {name: found for name, found in axe.items() if found}
    assert serious == {}, "\n".join(f"{k}: {v}" for k, v in serious.items())
    PAGE_CONSOLE.extend(browser.console_take())
    csp = [m for m in PAGE_CONSOLE if "Content Security Policy" in m]
    assert csp == []
