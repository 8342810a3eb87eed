from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from contacts import links
from contacts.models import (
    Channel,
    Consent,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    Purpose,
    PushSubscription,
)
from tests.contacts.factories import granted_contact, make_contact
from tests.harness import redis_keys_delete
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


def _path(url: str) -> str:
    return url.split("8000", 1)[1] if "8000" in url else url


def _subscription(endpoint: str = "https://fcm.googleapis.com/fcm/send/abc") -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {
            "p256dh": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
            "auth": base64.urlsafe_b64encode(b"0123456789abcdef").rstrip(b"=").decode(),
        },
    }


def test_get_on_the_unsubscribe_link_only_asks_and_post_one_click_revokes_with_evidence(
    client: Client,
) -> None:
    contact = granted_contact()
    url = _path(links.unsubscribe_url(contact_id=contact.pk, channel=Channel.EMAIL))
    page = client.get(url)
    assert page.status_code == 200 and b"Unsubscribe" in page.content
    assert Consent.objects.get(contact=contact).state == ConsentState.GRANTED

    response = client.post(
        url,
        {"List-Unsubscribe": "One-Click"},
        HTTP_USER_AGENT="Gmail one-click",
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 200
    assert Consent.objects.get(contact=contact).state == ConsentState.REVOKED
    event = ConsentEvent.objects.filter(contact=contact).first()
    assert event is not None
    assert (event.action, event.source, event.ip, event.user_agent, event.note) == (
        ConsentAction.REVOKE,
        ConsentSource.UNSUBSCRIBE_LINK,
        "198.51.100.7",
        "Gmail one-click",
        "one-click (RFC 8058)",
    )


def test_a_tampered_unsubscribe_link_is_refused_and_changes_nothing(client: Client) -> None:
    contact = granted_contact()
    token = links.token_make(salt=links.SALT_UNSUBSCRIBE, contact_id=contact.pk, channel="email")
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    response = client.post(f"/u/{tampered}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert b"not valid" in response.content
    # A token for another kind of link does not open this one either.
    other = links.token_make(salt=links.SALT_PREFERENCES, contact_id=contact.pk)
    assert client.post(f"/u/{other}/", {"List-Unsubscribe": "One-Click"}).status_code == 400
    assert Consent.objects.get(contact=contact).state == ConsentState.GRANTED


def test_an_expired_unsubscribe_link_says_it_expired(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    contact = granted_contact()
    real = time.time
    monkeypatch.setattr("django.core.signing.time.time", lambda: real() - 400 * 86400)
    url = _path(links.unsubscribe_url(contact_id=contact.pk))
    monkeypatch.setattr("django.core.signing.time.time", real)
    response = client.post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert b"expired" in response.content
    assert Consent.objects.get(contact=contact).state == ConsentState.GRANTED


def test_the_preference_centre_changes_channels_and_details_and_logs_each(client: Client) -> None:
    contact = granted_contact(email="pref@example.com")
    url = _path(links.preference_url(contact_id=contact.pk))
    page = client.get(url)
    assert page.status_code == 200
    assert b"Enable push in this browser" in page.content
    response = client.post(
        url, {"channel_sms": "on", "email": "New@Example.com", "phone": "+33612345678"}
    )
    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    # A new email address changes only once it confirms (tests/contacts/test_links.py).
    assert contact.email == "pref@example.com"
    assert b"We sent a link to new@example.com" in response.content
    assert str(contact.phone) == "+33612345678"
    states = {
        c.channel: c.state for c in Consent.objects.filter(contact=contact, purpose="marketing")
    }
    assert states == {"email": ConsentState.REVOKED, "sms": ConsentState.GRANTED}
    sources = set(
        ConsentEvent.objects.filter(
            contact=contact, source=ConsentSource.PREFERENCE_CENTRE
        ).values_list("action", flat=True)
    )
    assert sources == {ConsentAction.GRANT, ConsentAction.REVOKE, ConsentAction.DETAILS}


def test_the_preference_centre_refuses_a_bad_phone_and_changes_nothing(client: Client) -> None:
    contact = granted_contact()
    url = _path(links.preference_url(contact_id=contact.pk))
    response = client.post(url, {"channel_email": "on", "phone": "0612345678"})
    assert response.status_code == 400
    assert b"country code" in response.content
    contact.refresh_from_db()
    assert contact.phone is None


def test_double_opt_in_link_confirms_only_on_post(client: Client) -> None:
    from contacts.consent import consent_request_double_opt_in
    from tests.contacts.factories import evidence

    contact = make_contact()
    consent_request_double_opt_in(contact=contact, evidence=evidence())
    url = _path(links.double_opt_in_url(contact_id=contact.pk, purpose=Purpose.MARKETING))
    assert client.get(url).status_code == 200
    assert Consent.objects.get(contact=contact).state == ConsentState.PENDING
    assert client.post(url).status_code == 200
    assert Consent.objects.get(contact=contact).state == ConsentState.GRANTED


PUSH_URL = "/push/tests/subscribe/"  # the tests' workspace, by slug


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # Only this run's cache keys: cache.clear() would FLUSHDB, queues of other runs included.
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])
    workspace_for_tests()


def test_push_subscribe_stores_the_subscription_and_the_opt_in(client: Client) -> None:
    contact = make_contact()
    token = links.push_token(contact_id=contact.pk)
    body = {"subscription": _subscription(), "token": token}
    response = client.post("/push/tests/subscribe/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    sub = PushSubscription.objects.get()
    assert sub.contact_id == contact.pk and sub.active
    assert Consent.objects.get(contact=contact, channel=Channel.PUSH).state == "granted"
    # The same browser again is one row, not two.
    # The snippets of before workspaces post a token to /push/subscribe/: the token's contact
    # names the workspace.
    assert client.post("/push/subscribe/", body, content_type="application/json").status_code == 201
    assert PushSubscription.objects.count() == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["keys"].pop("p256dh"), "keys.p256dh is missing"),
        (lambda s: s.pop("keys"), "keys (p256dh and auth) are missing"),
        (lambda s: s["keys"].update(auth="!!"), "keys.auth"),
        (lambda s: s.update(endpoint="ftp://push.example.net/x"), "https"),
    ],
)
def test_push_subscribe_refuses_bad_subscriptions_naming_the_field(
    client: Client, mutate: Any, message: str
) -> None:
    sub = _subscription()
    mutate(sub)
    response = client.post(PUSH_URL, {"subscription": sub}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_push_subscription"
    assert message in response.json()["detail"]
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("https://127.0.0.1:5432/x", "not an IP address"),
        ("https://169.254.169.254/latest/meta-data/", "not an IP address"),
        ("https://[::1]:8301/admin/", "not an IP address"),
        ("https://[fd00::1]/x", "not an IP address"),
        ("https://10.0.0.1/x", "not an IP address"),
        ("http://fcm.googleapis.com/fcm/send/abc", "only https"),
        ("https://internal.example/push/abc", "internal.example is not an allowed host"),
        ("https://fcm.googleapis.com.evil.example/x", "not an allowed host"),
        ("https://[::1/x", "no usable host"),
    ],
)
def test_push_subscribe_refuses_endpoints_the_server_must_not_post_to_and_stores_nothing(
    client: Client, endpoint: str, reason: str
) -> None:
    contacts_before = Contact.objects.count()
    response = client.post(
        PUSH_URL,
        {"subscription": _subscription(endpoint=endpoint)},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_push_subscription"
    assert "endpoint refused" in response.json()["detail"]
    assert reason in response.json()["detail"]
    assert not PushSubscription.objects.exists()
    assert Contact.objects.count() == contacts_before


@override_settings(SANDBOX_PUSH_BASE_URL="http://127.0.0.1:8040")
def test_push_subscribe_accepts_the_sandbox_push_service_only_while_the_sandbox_is_on(
    client: Client,
) -> None:
    body = {"subscription": _subscription(endpoint="http://127.0.0.1:8040/push/abc")}
    with override_settings(SANDBOX_ENABLED=False):
        refused = client.post(PUSH_URL, body, content_type="application/json")
    assert refused.status_code == 400 and "only https" in refused.json()["detail"]
    assert not PushSubscription.objects.exists()
    with override_settings(SANDBOX_ENABLED=True):
        accepted = client.post(PUSH_URL, body, content_type="application/json")
    assert accepted.status_code == 201, accepted.content
    assert PushSubscription.objects.get().endpoint == "http://127.0.0.1:8040/push/abc"


@override_settings(DEBUG=False)
def test_push_subscribe_refuses_plain_http_endpoints_in_production(client: Client) -> None:
    sub = _subscription(endpoint="http://push.example.net/send/abc")
    response = client.post(
        PUSH_URL, {"subscription": sub}, content_type="application/json", secure=True
    )
    assert response.status_code == 400
    assert "https" in response.json()["detail"]


@override_settings(CORS_ALLOWED_ORIGINS=["https://shop.example.com"])
def test_push_subscribe_answers_cors_only_for_allowed_origins(client: Client) -> None:
    allowed = client.options(
        PUSH_URL,
        HTTP_ORIGIN="https://shop.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert allowed["access-control-allow-origin"] == "https://shop.example.com"
    other = client.options(
        PUSH_URL,
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "access-control-allow-origin" not in other


def test_the_service_worker_is_served_as_javascript(client: Client) -> None:
    response = client.get("/push/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"showNotification" in response.content
