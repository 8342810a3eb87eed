"""A real browser for the suite: Playwright for Python driving Debian's Chromium.

Playwright is given the browser's path, so it never looks for (or downloads) a build of its own
(`playwright install` is never run). Where Chromium is missing and the run may install system
packages (tests/system_packages.py), it is installed; elsewhere the browser tests skip, saying
how to install it.

Playwright's sync API runs an event loop in the test's thread, and Django refuses ORM calls from
a thread with a running loop. The fixture allows them (DJANGO_ALLOW_ASYNC_UNSAFE) only while a
browser test runs: the test's own ORM calls are ordinary synchronous ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.system_packages import system_binary

PACKAGES = ("chromium",)
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


@dataclass
class Browser:
    """One page plus what its console said (CSP violations among them)."""

    page: Any
    console: list[str] = field(default_factory=list)

    def console_take(self) -> list[str]:
        """The console entries since the last call."""
        taken, self.console[:] = list(self.console), []
        return taken


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path, why = system_binary(packages=PACKAGES, binaries=("chromium", "chromium-browser"))
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture
def browser(
    chromium_path: str, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Browser]:
    """A fresh Chromium per test, started after the live server and its database are ready and
    stopped before they go: Playwright's event loop exists only while the test runs (other
    tests' ORM calls never meet it), and the browser's keep-alive connections never hold the
    server's threads at teardown."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=list(LAUNCH_ARGS)
        )
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        page = context.new_page()
        wrapped = Browser(page=page)
        page.on("console", lambda message: wrapped.console.append(message.text))
        try:
            yield wrapped
        finally:
            context.close()
            chromium.close()


def console_messages(browser: Browser) -> list[str]:
    """The console entries since the last call."""
    return browser.console_take()


def sign_in(browser: Browser, *, base_url: str, session_key: str) -> None:
    """Carry a Django session into the browser (the cookie is set for the live server)."""
    browser.page.context.add_cookies([{"name": "sessionid", "value": session_key, "url": base_url}])
