"""The Twilio fake's Messages list: what reconciliation reads (filters, paging, queued messages)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from delivery.providers.twilio_sms import twilio_client, twilio_messages_to
from sandbox.twilio import TwilioFake

ACCOUNT = "AC" + "4" * 32
TOKEN = "list-token"


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake(account_sid=ACCOUNT, auth_token=TOKEN, send_callbacks=False) as server:
        yield server


def _post(fake: TwilioFake, to: str, body: str = "hello") -> str:
    response = requests.post(
        f"{fake.url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        data={"To": to, "Body": body, "MessagingServiceSid": "MG" + "1" * 32},
        auth=(ACCOUNT, TOKEN),
        timeout=5,
    )
    return str(response.json()["sid"])


def _get(
    fake: TwilioFake, query: str, *, auth: tuple[str, str] = (ACCOUNT, TOKEN)
) -> requests.Response:
    return requests.get(
        f"{fake.url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json?{query}", auth=auth, timeout=5
    )


def test_the_list_filters_by_recipient_and_date_sent_newest_first(fake: TwilioFake) -> None:
    first = _post(fake, "+447700900001")
    _post(fake, "+447700900002")
    second = _post(fake, "+447700900001")
    today = datetime.now(UTC).date()

    listed = _get(fake, "To=%2B447700900001").json()
    assert [m["sid"] for m in listed["messages"]] == [second, first]
    assert listed["messages"][0]["direction"] == "outbound-api"
    assert listed["messages"][0]["date_sent"]
    assert listed["next_page_uri"] is None

    # "DateSent>=" travels as the parameter "DateSent>": on or after midnight of that day.
    assert len(_get(fake, f"To=%2B447700900001&DateSent%3E={today}").json()["messages"]) == 2
    tomorrow = today + timedelta(days=1)
    assert _get(fake, f"To=%2B447700900001&DateSent%3E={tomorrow}").json()["messages"] == []
    assert len(_get(fake, f"DateSent={today}").json()["messages"]) == 3
    assert _get(fake, f"DateSent%3C={today - timedelta(days=1)}").json()["messages"] == []


def test_a_queued_message_has_no_date_sent_and_a_dated_filter_leaves_it_out(
    fake: TwilioFake,
) -> None:
    fake.queue_hold_s = 3600
    sid = _post(fake, "+447700900003")
    today = datetime.now(UTC).date()

    [listed] = _get(fake, "To=%2B447700900003").json()["messages"]
    assert (listed["sid"], listed["date_sent"], listed["status"]) == (sid, None, "accepted")
    assert _get(fake, f"To=%2B447700900003&DateSent%3E={today}").json()["messages"] == []


def test_pages_follow_next_page_uri_through_the_twilio_library(fake: TwilioFake) -> None:
    sids = [_post(fake, "+447700900004", f"n{n}") for n in range(25)]
    _post(fake, "+447700900005")
    client = twilio_client(account_sid=ACCOUNT, auth_token=TOKEN, base_url=fake.url)

    listed, complete = twilio_messages_to(
        client=client, to="+447700900004", sent_since=None, page_size=10, max_pages=5
    )
    assert complete
    assert [m.sid for m in listed] == sids[::-1]
    assert fake.list_requests == 3

    partial, complete = twilio_messages_to(
        client=client, to="+447700900004", sent_since=None, page_size=10, max_pages=2
    )
    assert not complete and len(partial) == 20


def test_a_message_is_listed_only_after_the_lag_and_only_to_its_own_account(
    fake: TwilioFake,
) -> None:
    fake.list_lag_s = 60
    _post(fake, "+447700900006")
    assert _get(fake, "To=%2B447700900006").json()["messages"] == []
    assert _get(fake, "To=%2B447700900006", auth=(ACCOUNT, "wrong")).status_code == 401
    assert _get(fake, "PageSize=0").status_code == 400
    assert _get(fake, "PageSize=1001").json()["code"] == 20001
