"""At INFO the log is not a stream of provider callbacks: their access lines are DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from continuity.logging import ProviderCallbackAccessFilter


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[tuple[logging.Logger, Capture]]:
    logger = logging.getLogger("tests.quiet.server")
    capture = Capture()
    logger.addHandler(capture)
    logger.addFilter(ProviderCallbackAccessFilter())
    logger.propagate = False
    yield logger, capture
    logger.removeHandler(capture)
    logger.filters.clear()


def access(logger: logging.Logger, line: str, status: int) -> None:
    level = logging.WARNING if status >= 400 else logging.INFO
    logger.log(level, '"%s" %s %s', line, str(status), "0", extra={"status_code": status})


def test_a_provider_callback_that_went_well_is_a_debug_line(
    server_log: tuple[logging.Logger, Capture],
) -> None:
    logger, capture = server_log
    logger.setLevel(logging.INFO)
    access(logger, "POST /webhooks/twilio/status/ HTTP/1.1", 200)
    access(logger, "GET /admin/ HTTP/1.1", 200)
    access(logger, "POST /webhooks/twilio/status/ HTTP/1.1", 403)
    assert [(r.levelname, r.getMessage().split()[1]) for r in capture.records] == [
        ("INFO", "/admin/"),
        ("WARNING", "/webhooks/twilio/status/"),
    ]
    logger.setLevel(logging.DEBUG)
    access(logger, "POST /webhooks/sendgrid/events/ HTTP/1.1", 200)
    assert capture.records[-1].levelname == "DEBUG"


def test_the_dev_servers_access_log_goes_through_the_filter() -> None:
    logging_config: dict[str, Any] = settings.LOGGING
    server = logging_config["loggers"]["django.server"]
    assert server["filters"] == ["provider_callbacks"] and server["propagate"] is True
