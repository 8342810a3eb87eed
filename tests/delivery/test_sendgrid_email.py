from __future__ import annotations

import pytest

from delivery.providers.base import (
    Deferred,
    EmailContent,
    Failed,
    OutboundMessage,
    Sent,
    Unknown,
)
from delivery.providers.sendgrid_email import SendGridEmailSender, sendgrid_connection
from sandbox.sendgrid import SendGridFake

CONTENT = EmailContent(
    subject="Hello {{ first_name }}",
    html="<p>Hi {{ first_name }}, our app is down &amp; we are here.</p>"
    '<a href="{{ unsubscribe }}">unsubscribe</a>',
    text="Hi {{ first_name }}, we are here & on email.",
    from_email="Shop <shop@example.com>",
    reply_to=("help@example.com",),
)


def _sender(
    fake: SendGridFake,
    *,
    failover: SendGridFake | None = None,
    timeout_s: float = 2.0,
    batch_size: int = 1000,
    **kwargs: object,
) -> SendGridEmailSender:
    return SendGridEmailSender(
        connection=sendgrid_connection(
            api_url=f"{fake.url}/v3/", api_key=fake.api_key, timeout_s=timeout_s
        ),
        failover_connection=(
            sendgrid_connection(api_url=f"{failover.url}/v3/", api_key=failover.api_key)
            if failover
            else None
        ),
        batch_size=batch_size,
        **kwargs,  # type: ignore[arg-type]
    )


def _messages(n: int, *, start: int = 1) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            delivery_id=i,
            to=f"person{i}@example.com",
            merge_fields={"first_name": f"Ann<{i}>", "unsubscribe": f"https://u.example/{i}"},
            unsubscribe_url=f"https://app.example/u/{i}",
        )
        for i in range(start, start + n)
    ]


def test_a_batch_is_one_request_with_one_merged_personalization_per_recipient(
    sendgrid_fake: SendGridFake,
) -> None:
    outcomes = _sender(sendgrid_fake).send_batch(content=CONTENT, messages=_messages(3))
    assert sendgrid_fake.accepted_requests == 1
    assert [type(o) for o in outcomes] == [Sent, Sent, Sent]
    received = {p.to[0]: p for p in sendgrid_fake.personalizations}
    first = received["person1@example.com"]
    assert first.rendered("text/plain") == "Hi Ann<1>, we are here & on email."
    assert first.rendered("text/html").startswith("<p>Hi Ann&lt;1&gt;, our app is down &amp; we")
    assert 'href="https://u.example/1"' in first.rendered("text/html")
    assert first.headers["List-Unsubscribe"] == "<https://app.example/u/1>"
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.custom_args["delivery_id"] == "1"
    assert first.from_email == "shop@example.com"
    assert first.reply_to == ["help@example.com"]
    # Each recipient's provider id is the anymail_id SendGrid events will echo back.
    by_delivery = {o.delivery_id: o for o in outcomes if isinstance(o, Sent)}
    assert by_delivery[1].provider_message_id == first.anymail_id
    assert len({o.provider_message_id for o in by_delivery.values()}) == 3


def test_more_than_a_batch_size_is_split_into_requests_the_fake_accepts(
    sendgrid_fake: SendGridFake,
) -> None:
    outcomes = _sender(sendgrid_fake, batch_size=1000).send_batch(
        content=CONTENT, messages=_messages(1001)
    )
    assert all(isinstance(o, Sent) for o in outcomes)
    assert sendgrid_fake.accepted_requests == 2
    assert sendgrid_fake.accepted_recipients == 1001


def test_the_fake_rejects_over_a_thousand_personalizations_like_sendgrid(
    sendgrid_fake: SendGridFake,
) -> None:
    # A batch size the provider refuses shows the fake's own limit (and SendGrid's error shape).
    sender = _sender(sendgrid_fake)
    sender.batch_size = 1001
    outcomes = sender.send_batch(content=CONTENT, messages=_messages(1001))
    assert all(isinstance(o, Failed) and o.code == "sendgrid_400" for o in outcomes)
    assert "limited to 1000 personalizations" in outcomes[0].text  # type: ignore[union-attr]


def test_the_same_address_twice_goes_out_in_two_requests(sendgrid_fake: SendGridFake) -> None:
    twins = [
        OutboundMessage(delivery_id=1, to="same@example.com"),
        OutboundMessage(delivery_id=2, to="SAME@example.com"),
    ]
    outcomes = _sender(sendgrid_fake).send_batch(content=CONTENT, messages=twins)
    assert [type(o) for o in outcomes] == [Sent, Sent]
    assert sendgrid_fake.accepted_requests == 2


def test_an_address_sendgrid_rejects_fails_alone_and_the_rest_are_sent(
    sendgrid_fake: SendGridFake,
) -> None:
    messages = _messages(3)
    messages[1] = OutboundMessage(delivery_id=2, to="nobody@reject.sandbox.test")
    outcomes = _sender(sendgrid_fake).send_batch(content=CONTENT, messages=messages)
    assert isinstance(outcomes[0], Sent) and isinstance(outcomes[2], Sent)
    assert isinstance(outcomes[1], Failed)
    assert outcomes[1].code == "sendgrid_400"
    assert "valid address" in outcomes[1].text
    assert sorted(p.to[0] for p in sendgrid_fake.personalizations) == [
        "person1@example.com",
        "person3@example.com",
    ]


def test_invalid_credentials_fail_every_recipient_for_good(sendgrid_fake: SendGridFake) -> None:
    sender = SendGridEmailSender(
        connection=sendgrid_connection(api_url=f"{sendgrid_fake.url}/v3/", api_key="wrong")
    )
    outcomes = sender.send_batch(content=CONTENT, messages=_messages(2))
    assert [(type(o), o.code) for o in outcomes] == [(Failed, "sendgrid_401")] * 2  # type: ignore[union-attr]
    assert "authorization grant is invalid" in outcomes[0].text  # type: ignore[union-attr]


def test_a_5xx_without_failover_defers_every_recipient(sendgrid_fake: SendGridFake) -> None:
    sendgrid_fake.set_fault(mode="error", status=503)
    outcomes = _sender(sendgrid_fake).send_batch(content=CONTENT, messages=_messages(2))
    assert [(type(o), o.code) for o in outcomes] == [(Deferred, "sendgrid_503")] * 2  # type: ignore[union-attr]


def test_a_429_defers_with_sendgrids_retry_after(sendgrid_fake: SendGridFake) -> None:
    sendgrid_fake.set_fault(mode="rate_limit", retry_after_s=42)
    outcomes = _sender(sendgrid_fake).send_batch(content=CONTENT, messages=_messages(1))
    assert isinstance(outcomes[0], Deferred)
    assert outcomes[0].retry_after_s == 42


def test_a_sendgrid_outage_moves_the_rest_of_the_chunk_to_the_failover_esp(
    sendgrid_fake: SendGridFake, failover_fake: SendGridFake
) -> None:
    # The first request gets through, then SendGrid starts answering 500.
    sendgrid_fake.set_fault(mode="error", status=500)
    sendgrid_fake.fault.remaining = None
    sender = _sender(sendgrid_fake, failover=failover_fake, batch_size=2)
    outcomes = sender.send_batch(content=CONTENT, messages=_messages(5))
    assert all(isinstance(o, Sent) and o.provider == "failover" for o in outcomes)
    assert failover_fake.accepted_recipients == 5
    assert sendgrid_fake.accepted_recipients == 0


def test_connection_refused_fails_over_or_defers(
    sendgrid_fake: SendGridFake, failover_fake: SendGridFake
) -> None:
    sendgrid_fake.set_fault(mode="refuse")
    outcomes = _sender(sendgrid_fake).send_batch(content=CONTENT, messages=_messages(1))
    assert isinstance(outcomes[0], Deferred) and outcomes[0].code == "sendgrid_unreachable"
    outcomes = _sender(sendgrid_fake, failover=failover_fake).send_batch(
        content=CONTENT, messages=_messages(2)
    )
    assert all(isinstance(o, Sent) and o.provider == "failover" for o in outcomes)


def test_a_timeout_before_the_request_left_defers(blackhole_url: str) -> None:
    sender = SendGridEmailSender(
        connection=sendgrid_connection(api_url=f"{blackhole_url}/v3/", api_key="k", timeout_s=0.3)
    )
    outcomes = sender.send_batch(content=CONTENT, messages=_messages(1))
    assert isinstance(outcomes[0], Deferred)
    assert outcomes[0].code == "sendgrid_unreachable"
    assert "ConnectTimeout" in outcomes[0].text


def test_a_timeout_after_the_request_left_is_unknown_and_not_failed_over(
    sendgrid_fake: SendGridFake, failover_fake: SendGridFake
) -> None:
    sendgrid_fake.set_fault(mode="timeout", after_accept=True, delay_s=1.0)
    sender = _sender(sendgrid_fake, failover=failover_fake, timeout_s=0.3)
    outcomes = sender.send_batch(content=CONTENT, messages=_messages(2))
    assert [(type(o), o.code) for o in outcomes] == [(Unknown, "sendgrid_no_answer")] * 2  # type: ignore[union-attr]
    assert failover_fake.accepted_recipients == 0
    # The fake did receive the request: a retry here would have sent a second copy.
    assert len(sendgrid_fake.requests_to("/v3/mail/send")) == 1


def test_failover_on_read_timeout_can_be_chosen_over_no_duplicates(
    sendgrid_fake: SendGridFake, failover_fake: SendGridFake
) -> None:
    sendgrid_fake.set_fault(mode="timeout", after_accept=True, delay_s=1.0)
    sender = _sender(
        sendgrid_fake, failover=failover_fake, timeout_s=0.3, failover_on_read_timeout=True
    )
    outcomes = sender.send_batch(content=CONTENT, messages=_messages(2))
    assert all(isinstance(o, Sent) and o.provider == "failover" for o in outcomes)


def test_a_merge_field_name_no_template_can_name_gets_no_substitution_tag(
    sendgrid_fake: SendGridFake,
) -> None:
    # Attribute keys saved before contacts.attribute_keys: "" would be the tag "--", which
    # ordinary text holds; "a-b" and "x__html" cannot be written as {{ ... }} at all.
    content = EmailContent(subject="Hi -- {{ first_name }}", html="<p>a--b</p>", text="a--b")
    fields = {"first_name": "Ann", "": "EMPTY", "a-b": "DASH", "x__html": "X"}
    sent = _sender(sendgrid_fake).send_batch(
        content=content,
        messages=[OutboundMessage(delivery_id=1, to="a@example.com", merge_fields=fields)],
    )
    assert [type(o) for o in sent] == [Sent]
    (received,) = sendgrid_fake.personalizations
    assert set(received.substitutions) == {"-first_name-", "-first_name__html-"}
    assert received.rendered("text/plain") == "a--b"
    assert received.rendered("text/html") == "<p>a--b</p>"


@pytest.mark.parametrize(
    "part", [{"subject": "{% include 'x.html' %}"}, {"html": "{% load static %}"}]
)
def test_a_stored_template_that_no_longer_compiles_fails_the_batch_with_the_reason(
    sendgrid_fake: SendGridFake, part: dict[str, str]
) -> None:
    parts = {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi", **part}
    content = EmailContent(subject=parts["subject"], html=parts["html"], text=parts["text"])
    outcomes = _sender(sendgrid_fake).send_batch(content=content, messages=_messages(2))
    assert [type(o) for o in outcomes] == [Failed, Failed]
    assert all(isinstance(o, Failed) and o.code == "template_invalid" for o in outcomes)
    assert all("is not allowed" in o.text for o in outcomes if isinstance(o, Failed))
    assert sendgrid_fake.requests_to("/v3/mail/send") == []
