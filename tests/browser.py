"""A real browser for the suite: Debian's headless Chromium driven through its ChromeDriver.

The driver is given both paths, so Selenium never looks for (or downloads) a browser of its own.
Where Chromium is missing and the run may install system packages (tests/system_packages.py),
it is installed; elsewhere the browser tests skip, saying how to install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.system_packages import system_binary

PACKAGES = ("chromium", "chromium-driver")


@pytest.fixture
def browser(live_server: Any) -> Iterator[webdriver.Chrome]:
    """A fresh browser per test, quit before the live server's database goes: its keep-alive
    connections would otherwise hold the server's threads (and their database sessions)."""
    chromium, why = system_binary(packages=PACKAGES, binaries=("chromium", "chromium-browser"))
    driver_path, driver_why = system_binary(packages=PACKAGES, binaries=("chromedriver",))
    if chromium is None or driver_path is None:
        pytest.skip(why or driver_why)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    # Console messages, CSP violations among them, are read back after each page.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_messages(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The console entries since the last call (ChromeDriver hands each out once)."""
    return list(driver.get_log("browser"))


def sign_in(driver: webdriver.Chrome, *, base_url: str, session_key: str) -> None:
    """Carry a Django session into the browser: a cookie can only be set on the page's origin."""
    driver.get(f"{base_url}/healthz")
    driver.add_cookie({"name": "sessionid", "value": session_key, "path": "/"})
