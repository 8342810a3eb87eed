"""WhatsApp Cloud API status webhook: signed statuses settle the messages the Graph fake took."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from django.test import Client

from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery, ProviderReceipt, ReceiptVerdict
from delivery.states import DeliveryStatus as S
from sandbox.graph import GraphFake
from tests.delivery.test_credentials import credentials_set
from tests.delivery.test_whatsapp_channel import graph, queued, statuses, whatsapp_contacts
from tests.workspaces import make_workspace

pytestmark = [pytest.mark.django_db]
__all__ = ["graph"]  # the fixture, used by name

URL = "/webhooks/whatsapp/"
SECRET = "test-whatsapp-app-secret"
VERIFY = "test-verify-token"


@pytest.fixture(autouse=True)
def whatsapp_app(settings: Any) -> None:
    settings.WHATSAPP_APP_SECRET = SECRET
    settings.WHATSAPP_WEBHOOK_VERIFY_TOKEN = VERIFY


def notification(statuses_: list[dict[str, Any]]) -> dict[str, Any]:
    """A Cloud API notification as Meta posts it: entry -> changes -> value.statuses."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "106540352242922"},
                            "statuses": statuses_,
                        },
                    }
                ],
            }
        ],
    }


def status(wamid: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": state, "timestamp": "1750000000", "recipient_id": "1", **extra}


def post_raw(body: bytes, *, secret: str | None = SECRET, header: str | None = None) -> Any:
    headers = {}
    if header is not None:
        headers["X-Hub-Signature-256"] = header
    elif secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    return Client().post(URL, data=body, content_type="application/json", headers=headers)


def post(statuses_: list[dict[str, Any]]) -> Any:
    return post_raw(json.dumps(notification(statuses_)).encode())


def sent_messages(count: int, start: int) -> tuple[list[int], list[str]]:
    ids = queued(whatsapp_contacts(count, start=start))
    assert deliveries_send_chunk(channel="whatsapp", ids=ids).sent == count
    wamids = list(
        Delivery.objects.filter(id__in=ids)
        .order_by("id")
        .values_list("provider_message_id", flat=True)
    )
    assert all(w.startswith("wamid.") for w in wamids)
    return ids, wamids


def last_receipt() -> ProviderReceipt:
    receipt = ProviderReceipt.objects.order_by("-id").first()
    assert receipt is not None
    return receipt


def test_statuses_settle_delivered_read_and_failed_messages(graph: GraphFake) -> None:
    ids, wamids = sent_messages(3, start=100)
    failed = status(wamids[2], "failed", errors=[{"code": 131049, "title": "not delivered"}])
    delivered = [status(wamids[0], "delivered"), status(wamids[1], "delivered")]
    response = post([*delivered, status(wamids[1], "read"), failed])
    assert response.status_code == 200
    assert statuses(ids) == [S.DELIVERED, S.OPENED, S.UNDELIVERED]
    row = Delivery.objects.get(id=ids[2])
    assert (row.error_code, row.error_text) == ("131049", "not delivered")
    receipt = last_receipt()
    assert (receipt.provider, receipt.kind, receipt.verdict, receipt.matched) == (
        "whatsapp",
        "status",
        ReceiptVerdict.APPLIED,
        4,
    )


def test_a_late_sent_status_does_not_move_a_delivered_message_back(graph: GraphFake) -> None:
    ids, wamids = sent_messages(1, start=110)
    assert post([status(wamids[0], "delivered")]).status_code == 200
    assert post([status(wamids[0], "sent")]).status_code == 200
    assert statuses(ids) == [S.DELIVERED]


def test_a_notification_without_statuses_is_ignored(graph: GraphFake) -> None:
    body = notification([])
    body["entry"][0]["changes"][0]["value"]["messages"] = [{"from": "1", "type": "text"}]
    assert post_raw(json.dumps(body).encode()).status_code == 200
    assert last_receipt().verdict == ReceiptVerdict.IGNORED


def test_statuses_of_messages_not_written_yet_wait_on_the_receipt(graph: GraphFake) -> None:
    assert post([status("wamid.UNKNOWN", "delivered")]).status_code == 200
    receipt = last_receipt()
    assert receipt.verdict == ReceiptVerdict.UNMATCHED
    assert receipt.pending[0]["provider"] == "whatsapp"


# --- hostile: 4xx with the reason, the receipt kept, nothing applied ---------------------------


def _refused(response: Any, status_code: int, ids: list[int], reason: str) -> None:
    assert response.status_code == status_code
    assert reason in response.json()["detail"]
    receipt = last_receipt()
    assert (receipt.provider, receipt.verdict, receipt.status_code) == (
        "whatsapp",
        ReceiptVerdict.REJECTED,
        status_code,
    )
    assert statuses(ids) == [S.SENT] * len(ids)


def test_unsigned_statuses_are_refused(graph: GraphFake) -> None:
    ids, wamids = sent_messages(1, start=120)
    body = json.dumps(notification([status(wamids[0], "failed")])).encode()
    _refused(post_raw(body, secret=None), 401, ids, "header missing")


def test_statuses_signed_with_another_secret_are_refused(graph: GraphFake) -> None:
    ids, wamids = sent_messages(1, start=130)
    body = json.dumps(notification([status(wamids[0], "failed")])).encode()
    _refused(post_raw(body, secret="someone-elses-secret"), 403, ids, "does not verify")
    _refused(post_raw(body, header="sha1=abc"), 403, ids, "does not verify")


def test_statuses_are_refused_while_no_app_secret_is_set(graph: GraphFake, settings: Any) -> None:
    ids, wamids = sent_messages(1, start=140)
    body = json.dumps(notification([status(wamids[0], "failed")])).encode()
    settings.WHATSAPP_APP_SECRET = ""
    _refused(post_raw(body, secret=SECRET), 403, ids, "WHATSAPP_APP_SECRET")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"entry": {}}',
        b'{"entry": [{"changes": [{"value": "x"}]}]}',
        b'{"entry": [{"changes": [{"value": {"statuses": [{"status": "read"}]}}]}]}',
        b'{"entry": [{"changes": [{"value": {"statuses": [7]}}]}]}',
    ],
)
def test_malformed_signed_bodies_are_400(graph: GraphFake, body: bytes) -> None:
    ids, _ = sent_messages(1, start=150)
    _refused(post_raw(body), 400, ids, "")


def test_a_replayed_notification_is_refused(graph: GraphFake) -> None:
    ids, wamids = sent_messages(1, start=160)
    body = json.dumps(notification([status(wamids[0], "delivered")])).encode()
    assert post_raw(body).status_code == 200
    Delivery.objects.filter(id__in=ids).update(status=S.SENT)
    _refused(post_raw(body), 409, ids, "replay")


def test_the_subscription_handshake_echoes_the_challenge_only_for_our_token() -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    ok = Client().get(URL, {**query, "hub.verify_token": VERIFY})
    assert (ok.status_code, ok.content) == (200, b"1158201444")
    assert Client().get(URL, {**query, "hub.verify_token": "guess"}).status_code == 403
    bad = Client().get(URL, {**query, "hub.verify_token": VERIFY, "hub.challenge": "<x>"})
    assert bad.status_code == 400


def test_the_handshake_is_refused_while_no_verify_token_is_set(settings: Any) -> None:
    settings.WHATSAPP_WEBHOOK_VERIFY_TOKEN = ""
    query = {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": ""}
    assert Client().get(URL, query).status_code == 403


# --- a workspace's own Meta app -----------------------------------------------------------------

OWN_SECRET = "the-agency-clients-own-meta-app-secret"
CLIENT_NUMBER = "106540352242922"  # the phone number id `notification` names


def test_a_workspace_with_its_own_meta_app_has_its_statuses_verified_with_that_apps_secret(
    graph: GraphFake,
) -> None:
    credentials_set(
        make_workspace(),
        whatsapp_phone_number_id=CLIENT_NUMBER,
        whatsapp_access_token="EAAG" + "x" * 40,
        whatsapp_app_secret=OWN_SECRET,
    )
    ids, wamids = sent_messages(1, start=170)
    body = json.dumps(notification([status(wamids[0], "delivered")])).encode()
    # The install's app did not sign it: refused, whatever the install's secret is.
    _refused(post_raw(body, secret=SECRET), 403, ids, "does not verify")
    assert post_raw(body, secret=OWN_SECRET).status_code == 200
    assert statuses(ids) == [S.DELIVERED]


def test_a_workspace_number_without_its_own_secret_is_verified_with_the_installs(
    graph: GraphFake,
) -> None:
    credentials_set(
        make_workspace(),
        whatsapp_phone_number_id=CLIENT_NUMBER,
        whatsapp_access_token="EAAG" + "y" * 40,
    )
    ids, wamids = sent_messages(1, start=180)
    body = json.dumps(notification([status(wamids[0], "delivered")])).encode()
    assert post_raw(body, secret=SECRET).status_code == 200
    assert statuses(ids) == [S.DELIVERED]


def test_a_notification_naming_numbers_of_two_meta_apps_is_refused(graph: GraphFake) -> None:
    credentials_set(
        make_workspace(),
        whatsapp_phone_number_id=CLIENT_NUMBER,
        whatsapp_access_token="EAAG" + "z" * 40,
        whatsapp_app_secret=OWN_SECRET,
    )
    ids, wamids = sent_messages(1, start=190)
    payload = notification([status(wamids[0], "delivered")])
    other = json.loads(json.dumps(payload["entry"][0]))
    other["changes"][0]["value"]["metadata"]["phone_number_id"] = "999000111222333"
    payload["entry"].append(other)
    body = json.dumps(payload).encode()
    for secret in (SECRET, OWN_SECRET):
        _refused(post_raw(body, secret=secret), 400, ids, "different Meta apps")


def test_the_admin_asks_for_the_number_before_an_app_secret(admin_client: Client) -> None:
    page = admin_client.get("/admin/delivery/workspacecredentials/")
    assert "WhatsApp status webhooks (your own Meta app)" in page.content.decode()
    response = admin_client.post(
        "/admin/delivery/workspacecredentials/", {"new_whatsapp_app_secret": OWN_SECRET}
    )
    assert response.status_code == 200
    assert "set the number first" in response.content.decode()
    assert OWN_SECRET not in response.content.decode()
