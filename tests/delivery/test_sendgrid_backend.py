from __future__ import annotations

import json
from typing import Any

import pytest
from anymail.backends.sendgrid import EmailBackend as AnymailSendGridBackend
from anymail.exceptions import AnymailInvalidAddress
from anymail.message import AnymailMessage
from anymail.utils import parse_address_list

from delivery.providers.sendgrid_backend import EmailBackend, recipients_parse

ADDRESSES = [
    "ann@example.com",
    "first.last+tag@mail.example.co.uk",
    "o'brien@example.ie",
    "x_y-z{1}@sub-domain.example",
    "Ann Example <ann2@example.com>",
    '"quoted local"@example.com',
    "jöhn@exämple.de",
    "user@xn--exmple-cua.de",
]


def test_recipients_parse_returns_what_anymail_would_for_every_kind_of_address() -> None:
    fast = recipients_parse(ADDRESSES)
    slow = parse_address_list(ADDRESSES)

    assert [a.address for a in fast] == [a.address for a in slow]
    assert [a.addr_spec for a in fast] == [a.addr_spec for a in slow]
    assert [a.display_name for a in fast] == [a.display_name for a in slow]
    assert [a.as_dict() for a in fast] == [a.as_dict() for a in slow]


@pytest.mark.parametrize("bad", ["no-at-sign", "a@b@c", "trailing.dot.@example.com", ""])
def test_an_address_that_is_not_plain_still_gets_anymails_own_error(bad: str) -> None:
    with pytest.raises(AnymailInvalidAddress) as raised:
        recipients_parse(["ok@example.com", bad])
    assert "`to`" in str(raised.value)


def _payload_data(backend_class: Any) -> dict[str, Any]:
    backend = backend_class(api_key="k", api_url="http://127.0.0.1:1/v3/")
    backend.merge_field_format = "-{}-"
    message = AnymailMessage(
        subject="Hi -first_name-",
        body="Hello -first_name-",
        from_email="Shop <shop@example.com>",
        to=ADDRESSES[:5],
        reply_to=["help@example.com"],
    )
    message.attach_alternative("<p>Hello -first_name-</p>", "text/html")
    message.merge_data = {a: {"first_name": f"n{i}"} for i, a in enumerate(message.to)}
    message.merge_headers = {
        a: {"List-Unsubscribe": f"<https://u/{i}>"} for i, a in enumerate(message.to)
    }
    message.merge_metadata = {a: {"delivery_id": str(i)} for i, a in enumerate(message.to)}
    data: dict[str, Any] = json.loads(
        backend.build_message_payload(message, backend.send_defaults).serialize_data()
    )
    for personalization in data["personalizations"]:
        personalization["custom_args"].pop("anymail_id")  # a fresh uuid per send
    return data


def test_the_backend_builds_byte_for_byte_the_request_anymail_builds() -> None:
    assert _payload_data(EmailBackend) == _payload_data(AnymailSendGridBackend)


def test_plain_addresses_never_reach_the_rfc_5322_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a plain address went through the slow parser")

    monkeypatch.setattr("delivery.providers.sendgrid_backend.parse_address_list", refuse)

    parsed = recipients_parse([f"person{i}@example.com" for i in range(1000)])

    assert parsed[999].addr_spec == "person999@example.com"
