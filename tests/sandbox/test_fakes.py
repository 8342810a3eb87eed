"""The fakes' own rules, spoken to over plain HTTP (the senders' tests cover the client side)."""

from __future__ import annotations

from typing import Any

import requests

from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake


def _mail(*personalizations: list[str]) -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": a} for a in p]} for p in personalizations],
        "from": {"email": "shop@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}],
    }


def _post(fake: SendGridFake, body: dict[str, Any], key: str | None = None) -> requests.Response:
    return requests.post(
        f"{fake.url}/v3/mail/send",
        json=body,
        headers={"Authorization": f"Bearer {key or fake.api_key}"},
        timeout=5,
    )


def test_sendgrid_fake_refuses_the_same_address_twice_in_one_request(
    sendgrid_fake: SendGridFake,
) -> None:
    response = _post(sendgrid_fake, _mail(["a@example.com"], ["A@example.com"]))
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "personalizations.1"
    assert "more than once" in error["message"]
    assert sendgrid_fake.accepted_requests == 0


def test_sendgrid_fake_counts_recipients_across_personalizations(
    sendgrid_fake: SendGridFake,
) -> None:
    many = [[f"p{i}-{j}@example.com" for j in range(2)] for i in range(501)]
    response = _post(sendgrid_fake, _mail(*many))
    assert response.status_code == 400
    assert "limit of 1000 total recipients" in response.json()["errors"][0]["message"]
    ok = _post(sendgrid_fake, _mail(*many[:500]))
    assert ok.status_code == 202 and ok.headers["X-Message-Id"]
    assert sendgrid_fake.accepted_recipients == 1000


def test_sendgrid_fake_wants_the_bearer_key_a_sender_and_content(
    sendgrid_fake: SendGridFake,
) -> None:
    assert _post(sendgrid_fake, _mail(["a@example.com"]), key="nope").status_code == 401
    no_from = _mail(["a@example.com"])
    del no_from["from"]
    assert _post(sendgrid_fake, no_from).json()["errors"][0]["field"] == "from"
    no_content = _mail(["a@example.com"])
    del no_content["content"]
    assert _post(sendgrid_fake, no_content).json()["errors"][0]["field"] == "content"
    bad = requests.post(
        f"{sendgrid_fake.url}/v3/mail/send",
        data=b"{not json",
        headers={"Authorization": f"Bearer {sendgrid_fake.api_key}"},
        timeout=5,
    )
    assert bad.status_code == 400


def test_twilio_fake_error_numbers_can_be_set_over_http(twilio_fake: TwilioFake) -> None:
    url = f"{twilio_fake.url}/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages.json"
    auth = (twilio_fake.account_sid, twilio_fake.auth_token)
    form = {"To": "+14155550123", "From": "+15005550006", "Body": "hi"}
    assert requests.post(url, data=form, auth=auth, timeout=5).status_code == 201
    set_numbers = requests.post(
        f"{twilio_fake.url}/__sandbox__/numbers", json={"+14155550123": 21610}, timeout=5
    )
    assert set_numbers.status_code == 200
    refused = requests.post(url, data=form, auth=auth, timeout=5)
    assert refused.status_code == 400
    assert refused.json() == {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }
    missing = requests.post(url, data={"To": "+14155550100", "Body": "x"}, auth=auth, timeout=5)
    assert missing.json()["code"] == 21606
