"""anymail's SendGrid backend, with recipient lists read in linear time for batch sends.

anymail runs every recipient through `email.utils.getaddresses` and then
`email.headerregistry.Address` parsing: about 40 us an address, 40 ms of every 1,000-recipient
request, more than the request itself. Campaign recipients are CRM addresses that were validated
and normalised on the way in, so a plain `local@domain` (a dot-atom local part, an ASCII domain)
is built directly from its two halves, which is what the parser would have produced. Anything
else (a display name, quoting, non-ASCII, a comma) still goes through anymail's own parser, with
its own errors. Everything after the recipient list is anymail's code, unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from anymail.backends.sendgrid import EmailBackend as AnymailSendGridBackend
from anymail.backends.sendgrid import SendGridPayload
from anymail.utils import EmailAddress, parse_address_list

# RFC 5322 dot-atom local part; a hostname of letters, digits, dots and hyphens.
_PLAIN_ADDRESS = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
)


def recipients_parse(addresses: Sequence[Any] | str | None) -> list[EmailAddress]:
    """anymail's parse_address_list result, with plain addresses built directly."""
    if addresses is None or isinstance(addresses, str):
        return parse_address_list(addresses, field="to")
    parsed: list[EmailAddress] = []
    for address in addresses:
        match = _PLAIN_ADDRESS.fullmatch(address) if isinstance(address, str) else None
        if match is None:
            parsed.extend(parse_address_list([address], field="to"))
        else:
            parsed.append(EmailAddress(username=match["local"], domain=match["domain"]))
    return parsed


class BatchSendGridPayload(SendGridPayload):
    base_message_attrs = tuple(
        (attr, combiner, recipients_parse if attr == "to" else converter)
        for attr, combiner, converter in SendGridPayload.base_message_attrs
    )


class EmailBackend(AnymailSendGridBackend):
    """DELIVERY_EMAIL_BACKEND's default: anymail's SendGrid backend with recipients_parse."""

    def build_message_payload(self, message: Any, defaults: Any) -> BatchSendGridPayload:
        return BatchSendGridPayload(message, defaults, self)
