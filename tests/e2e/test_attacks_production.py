"""The issue's attacks (#14), replayed over HTTP against a production-mode instance: gunicorn with
DEBUG off, the sandbox off and every secret set to a real-looking value. Each attack must be
refused with a 4xx (or be harmless), nothing may answer 5xx, and nothing a refused request names
may change in the database."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import override_settings

from contacts.links import SALT_PUSH, SALT_UNSUBSCRIBE, token_make
from contacts.models import Consent, ConsentEvent, Contact, PushSubscription, Segment
from continuity.models import Role
from delivery.models import Channel, ProviderReceipt
from outages.models import WebhookReceipt
from tests.contacts.factories import make_contact
from tests.harness import CELERY, ProcessHandle
from tests.workspaces import make_api_key, make_member, make_workspace

pytestmark = [pytest.mark.e2e]

GUNICORN = CELERY.replace("/celery", "/gunicorn")
DEEP = b"[" * 50_000 + b"]" * 50_000


def _public_key_b64() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _vapid_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return (
        base64.urlsafe_b64encode(private).rstrip(b"=").decode(),
        base64.urlsafe_b64encode(public).rstrip(b"=").decode(),
    )


def production_env(worker_env: dict[str, str]) -> dict[str, str]:
    """Production settings: no sandbox, no DEBUG, every secret its own random value."""
    vapid_private, vapid_public = _vapid_pair()
    fernet = Fernet.generate_key().decode()
    return {
        **worker_env,
        "DEBUG": "false",
        "SANDBOX_ENABLED": "false",
        "SANDBOX_SENDGRID_DEMO_EVENTS": "false",
        "LOG_FORMAT": "json",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CONTACTS_LINK_SIGNING_KEY": secrets.token_urlsafe(50),
        "CONTACTS_ERASURE_HASH_KEY": secrets.token_urlsafe(50),
        "OUTAGES_CREDENTIAL_KEY": fernet,
        "SOCIAL_TOKEN_KEYS": fernet,
        "SENDGRID_API_KEY": "SG." + secrets.token_urlsafe(40),
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": _public_key_b64(),
        "DELIVERY_EMAIL_FAILOVER_API_KEY": secrets.token_urlsafe(30),
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "WHATSAPP_ACCESS_TOKEN": secrets.token_urlsafe(40),
        "VAPID_PRIVATE_KEY": vapid_private,
        "VAPID_PUBLIC_KEY": vapid_public,
    }


@pytest.fixture
def production_server(worker_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    env = production_env(worker_env)
    handle = ProcessHandle(
        [GUNICORN, "continuity.wsgi", "--bind", "127.0.0.1:0", "--workers", "2"],
        env,
        "gunicorn",
    )
    try:
        line = handle.wait_for("Listening at:", timeout=60)
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        yield f"http://127.0.0.1:{port[1]}", env
    finally:
        handle.stop()
    # Django logs a refused Host header (a 400) with its traceback; any other one is a crash.
    crashes = [
        line
        for line in handle.output.splitlines()
        if "Traceback" in line and "django.security.DisallowedHost" not in line
    ]
    assert crashes == [], crashes[0][:4000]


@dataclass
class Replay:
    base: str
    failures: list[str] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    def send(
        self,
        name: str,
        method: str,
        path: str,
        *,
        expect: Callable[[int], bool] = lambda status: 400 <= status < 500,
        unchanged: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        before = unchanged() if unchanged else None
        # Behind the TLS proxy production runs with: without the header the app redirects to https.
        headers = {"X-Forwarded-Proto": "https", **kwargs.pop("headers", {})}
        response = requests.request(
            method, self.base + path, headers=headers, timeout=30, allow_redirects=False, **kwargs
        )
        self.answered.append(response.status_code)
        if response.status_code >= 500 or not expect(response.status_code):
            self.failures.append(f"{name}: {response.status_code} {response.text[:200]!r}")
        if unchanged and unchanged() != before:
            self.failures.append(f"{name}: the database changed")
        return response


def _state() -> tuple[int, ...]:
    return (
        Contact.objects.count(),
        Consent.objects.count(),
        ConsentEvent.objects.count(),
        PushSubscription.objects.count(),
        Segment.objects.count(),
    )


@pytest.mark.timeout(300)
def test_the_issues_attacks_are_refused_by_a_production_instance(
    production_server: tuple[str, dict[str, str]],
) -> None:
    base, env = production_server
    workspace = make_workspace(slug="acme")
    owner = make_member(workspace=workspace, role=Role.OWNER)
    key = make_api_key(user=owner, workspace=workspace)
    api = {"Authorization": f"Bearer {key}"}
    contact = make_contact(workspace=workspace, email="ada@example.com", phone="")
    replay = Replay(base)

    # SSRF through push endpoints: internal, link-local and loopback addresses are refused.
    for endpoint in (
        "https://127.0.0.1:5432/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:8301/admin/",
        "http://fcm.googleapis.com/fcm/send/x",
    ):
        replay.send(
            f"push endpoint {endpoint}",
            "POST",
            "/push/acme/subscribe/",
            json={"subscription": {"endpoint": endpoint, "keys": {"p256dh": "x", "auth": "y"}}},
            unchanged=_state,
        )
    for expiration in ("1e300", "NaN", "-1e20"):
        body = (
            '{"subscription": {"endpoint": "https://fcm.googleapis.com/fcm/send/x", '
            f'"expirationTime": {expiration}, "keys": {{"p256dh": "x", "auth": "y"}}}}}}'
        )
        replay.send(
            f"expirationTime {expiration}",
            "POST",
            "/push/acme/subscribe/",
            data=body,
            headers={"Content-Type": "application/json"},
            unchanged=_state,
        )

    # Forged provider webhooks: a START without Twilio's signature grants nothing.
    replay.send(
        "forged Twilio START",
        "POST",
        "/webhooks/twilio/inbound/",
        data={"From": "+393331234567", "To": "+15005550006", "Body": "START"},
        unchanged=_state,
    )
    replay.send(
        "signature timestamp of 400 nines",
        "POST",
        "/webhooks/sendgrid/events/",
        data=b"[]",
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ",
            "X-Twilio-Email-Event-Webhook-Timestamp": "9" * 400,
        },
    )
    for path in ("/webhooks/sendgrid/events/", "/webhooks/twilio/status/", "/hooks/monitors/x/"):
        replay.send(f"NUL byte to {path}", "POST", path, data=b'{"a": "\x00"}')
        replay.send(f"50,000-deep JSON to {path}", "POST", path, data=DEEP)
        replay.send(f"a list for an object to {path}", "POST", path, data=b"[1, 2, 3]")
    replay.send("50,000-deep JSON to push subscribe", "POST", "/push/acme/subscribe/", data=DEEP)

    # Authenticated API input that answered 500 before.
    replay.send(
        "impossible updated_since", "GET", "/api/v1/contacts/?updated_since=2026-02-31", headers=api
    )
    replay.send(
        "a JSON array as a PATCH body",
        "PATCH",
        f"/api/v1/contacts/{contact.pk}/",
        data=b"[1]",
        headers={**api, "Content-Type": "application/json"},
        unchanged=_state,
    )
    replay.send(
        "an ORM lookup as a segment key",
        "POST",
        "/api/v1/segments/",
        json={"name": "regex", "definition": {"attributes": {"city__regex": {"eq": "("}}}},
        headers=api,
        unchanged=_state,
    )
    replay.send(
        "a NUL byte in a contact's name",
        "POST",
        "/api/v1/contacts/",
        json={"email": "nul@example.com", "first_name": "a\x00b"},
        headers=api,
        unchanged=_state,
    )
    replay.send("no API key", "GET", "/api/v1/contacts/", unchanged=_state)

    # A forwarded unsubscribe link unsubscribes, and opens nothing else.
    with override_settings(
        SECRET_KEY=env["SECRET_KEY"], CONTACTS_LINK_SIGNING_KEY=env["CONTACTS_LINK_SIGNING_KEY"]
    ):
        unsubscribe = token_make(
            salt=SALT_UNSUBSCRIBE, contact_id=contact.pk, channel=Channel.EMAIL
        )
    page = replay.send(
        "an unsubscribe link opened",
        "GET",
        f"/u/{unsubscribe}/",
        expect=lambda status: status == 200,
    )
    if "ada@example.com" in page.text:
        replay.failures.append("the unsubscribe page shows the contact's address")
    replay.send(
        "an unsubscribe token as a preference link",
        "GET",
        f"/preferences/{unsubscribe}/",
        unchanged=_state,
    )

    # The API's documentation loads nothing from outside, and pages carry a CSP.
    docs = replay.send("the API docs", "GET", "/api/docs/", expect=lambda status: status == 200)
    if re.search(r"""(src|href)=["']https?://""", docs.text):
        replay.failures.append("the API docs load a script or style from another origin")
    if "Content-Security-Policy" not in docs.headers:
        replay.failures.append("the API docs are sent without a Content-Security-Policy")

    # Anyone growing the receipts table: a flood on one slug is cut off with 429s.
    receipts_before = WebhookReceipt.objects.count() + ProviderReceipt.objects.count()
    flood = [
        replay.send(
            f"flood {n}",
            "POST",
            "/hooks/monitors/nope/",
            data=b"x" * 64_000,
            expect=lambda status: status in (401, 403, 404, 413, 429),
        ).status_code
        for n in range(200)
    ]
    if 429 not in flood:
        replay.failures.append("200 unauthenticated 64 KB posts on one slug were never limited")
    grown = WebhookReceipt.objects.count() + ProviderReceipt.objects.count() - receipts_before
    if grown > 100:
        replay.failures.append(f"a flood of 200 posts kept {grown} receipts")

    # Guessing the admin's password: locked out after a few tries.
    session = requests.Session()
    login = session.get(base + "/admin/login/", headers={"X-Forwarded-Proto": "https"}, timeout=30)
    csrf = login.cookies.get("csrftoken") or ""
    statuses = []
    for n in range(12):
        answer = requests.post(
            base + "/admin/login/",
            data={
                "username": owner.username,
                "password": f"guess-{n}",
                "csrfmiddlewaretoken": csrf,
            },
            headers={
                "X-Forwarded-Proto": "https",
                "Referer": base.replace("http://", "https://") + "/admin/login/",
                "Cookie": f"csrftoken={csrf}",
            },
            timeout=30,
            allow_redirects=False,
        )
        statuses.append(answer.status_code)
    if any(status >= 500 for status in statuses) or 429 not in statuses:
        replay.failures.append(f"twelve wrong passwords were answered {statuses}")

    assert not replay.failures, "\n".join(replay.failures)
    assert all(status < 500 for status in replay.answered)


@pytest.mark.timeout(300)
def test_more_attacks_a_reviewer_might_hold_back_are_refused_too(
    production_server: tuple[str, dict[str, str]],
) -> None:
    """Beyond the issue's list: headers, hosts, other workspaces, keys, links and methods."""
    base, env = production_server
    acme, other = make_workspace(slug="acme"), make_workspace(slug="other")
    owner = make_member(workspace=acme, role=Role.OWNER)
    key = make_api_key(user=owner, workspace=acme)
    api = {"Authorization": f"Bearer {key}"}
    theirs = make_contact(workspace=other, email="theirs@example.com", phone="")
    ours = make_contact(workspace=acme, email="ours@example.com", phone="")
    replay = Replay(base)

    # Production answers over TLS only, and says so.
    plain = requests.get(base + "/admin/login/", timeout=30, allow_redirects=False)
    if plain.status_code != 301 or not plain.headers.get("Location", "").startswith("https://"):
        replay.failures.append(f"plain http was answered {plain.status_code}, not sent to https")
    page = replay.send("the login page", "GET", "/admin/login/", expect=lambda s: s == 200)
    for header, wanted in (
        ("Strict-Transport-Security", "max-age="),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", "frame-ancestors 'none'"),
    ):
        if wanted not in page.headers.get(header, ""):
            replay.failures.append(f"the login page's {header} is {page.headers.get(header)!r}")
    cookie = page.headers.get("Set-Cookie", "")
    if "csrftoken=" in cookie and "Secure" not in cookie:
        replay.failures.append(f"the CSRF cookie is not Secure: {cookie}")
    replay.send(
        "a forged Host header",
        "GET",
        "/admin/login/",
        headers={"Host": "evil.example.com"},
        expect=lambda s: s == 400,
    )

    # Another workspace's rows are not there for this key, read or write.
    before = Contact.objects.values_list("pk", "email", "first_name").order_by("pk")
    snapshot = list(before)
    replay.send("another workspace's contact", "GET", f"/api/v1/contacts/{theirs.pk}/", headers=api)
    replay.send(
        "a PATCH of another workspace's contact",
        "PATCH",
        f"/api/v1/contacts/{theirs.pk}/",
        json={"first_name": "Mallory"},
        headers=api,
    )
    if list(before.all()) != snapshot:
        replay.failures.append("another workspace's contact changed")
    listing = replay.send(
        "a search that tries SQL",
        "GET",
        "/api/v1/contacts/?search=' OR 1=1--&page_size=1000000000",
        headers=api,
        expect=lambda s: s in (200, 400),
    )
    if "theirs@example.com" in listing.text:
        replay.failures.append("a search showed another workspace's contact")

    # Keys that are not keys.
    for name, value in (
        ("a revoked key", f"Bearer {_revoked_key(owner, acme)}"),
        ("a 10,000-character key", "Bearer " + "k" * 10_000),
        ("a key with a NUL", "Bearer abc\x00def"),
        ("another scheme", f"Basic {base64.b64encode(b'admin:admin').decode()}"),
    ):
        replay.send(
            name,
            "GET",
            "/api/v1/contacts/",
            headers={"Authorization": value},
            # gunicorn answers an over-long header itself (431), before Django.
            expect=lambda s: s in (400, 401, 403, 431),
        )

    # Links: tampered, of the wrong kind, or absurdly long.
    with override_settings(
        SECRET_KEY=env["SECRET_KEY"], CONTACTS_LINK_SIGNING_KEY=env["CONTACTS_LINK_SIGNING_KEY"]
    ):
        good = token_make(salt=SALT_UNSUBSCRIBE, contact_id=ours.pk, channel=Channel.EMAIL)
        push = token_make(salt=SALT_PUSH, contact_id=ours.pk)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for name, path in (
        ("a tampered unsubscribe link", f"/u/{tampered}/"),
        ("a push token as an unsubscribe link", f"/u/{push}/"),
        ("a 10,000-character link", "/u/" + "A" * 10_000 + "/"),
    ):
        replay.send(name, "POST", path, data={"List-Unsubscribe": "One-Click"}, unchanged=_state)

    # Methods a view does not take.
    for method, path in (
        ("PUT", "/webhooks/twilio/inbound/"),
        ("DELETE", "/push/acme/subscribe/"),
        ("GET", "/webhooks/sendgrid/events/"),
    ):
        replay.send(f"{method} {path}", method, path, expect=lambda s: s == 405, unchanged=_state)

    # Bodies that are not what they say.
    replay.send(
        "invalid UTF-8 as JSON",
        "POST",
        "/api/v1/contacts/",
        data=b'{"email": "\xff\xfe@example.com"}',
        headers={**api, "Content-Type": "application/json"},
        unchanged=_state,
    )
    replay.send(
        "a date beyond any calendar",
        "GET",
        "/api/v1/contacts/?updated_since=99999999999999999999",
        headers=api,
    )
    replay.send(
        "a 100 KB cookie",
        "GET",
        "/admin/login/",
        headers={"Cookie": "a=" + "b" * 100_000},
        expect=lambda s: 400 <= s < 500 or s == 200,
    )

    assert not replay.failures, "\n".join(replay.failures)


def _revoked_key(owner: Any, workspace: Any) -> str:
    from continuity.models import ApiKey

    key = make_api_key(user=owner, workspace=workspace)
    ApiKey.objects.filter(prefix=key.split(".")[0]).update(revoked=True)
    return key
