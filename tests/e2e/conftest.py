from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.sendgrid import SendGridFake
from tests.embedded_var import embedded_var_dir  # noqa: F401 - a fixture these tests share


@pytest.fixture
def sendgrid_fake() -> Iterator[SendGridFake]:
    with SendGridFake(api_key="e2e-sendgrid-key") as fake:
        yield fake
