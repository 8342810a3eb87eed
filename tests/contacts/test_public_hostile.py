"""The public pages and push subscribe under hostile input: never a 5xx, and a refusal changes
nothing (no contact, subscription, consent or consent event appears or moves)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client, TestCase
from hypothesis import event, given
from hypothesis import strategies as st

from contacts import links
from contacts.models import Consent, ConsentEvent, Contact, PushSubscription, Suppression
from tests.contacts.factories import granted_contact
from tests.contacts.test_views import _path, _subscription
from tests.fuzz import FUZZ, HOSTILE_NUMBERS, HOSTILE_TEXT, bodies, counts, dumps, json_values
from tests.harness import redis_keys_delete
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db

STATE = counts(Contact, PushSubscription, Consent, ConsentEvent, Suppression)
URL = "/push/tests/subscribe/"  # the tests' workspace, by slug


@pytest.fixture(autouse=True)
def _fresh_link_throttles(settings: Any) -> None:
    # The fuzz sends a few hundred requests from one address (the throttle middleware is off in
    # DEBUG test runs; the per-contact link-mail throttle lives in the cache).
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])
    workspace_for_tests()


def client() -> Client:
    return Client(raise_request_exception=False)


def subscribe(body: bytes | str) -> Any:
    return client().post(URL, data=body, content_type="application/json")


def subscription_with(**fields: Any) -> str:
    sub = _subscription()
    sub.update(fields)
    return json.dumps({"subscription": sub})


# --- push subscribe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expiration",
    ["1e300", "NaN", "Infinity", "-Infinity", "-1e20", "-1", '"tomorrow"', "true", "1e17", "1e400"],
)
def test_an_absurd_expiration_time_is_400_and_stores_nothing(expiration: str) -> None:
    body = subscription_with(expirationTime="EXP").replace('"EXP"', expiration)
    before = STATE()
    response = subscribe(body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid_push_subscription", "invalid_contact")
    assert STATE() == before


def test_a_real_expiration_time_is_kept() -> None:
    response = subscribe(subscription_with(expirationTime=1_893_456_000_000))
    assert response.status_code == 201, response.content
    expires = PushSubscription.objects.get().expiration_time
    assert expires is not None and expires.year == 2030


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "byte limit"),  # refused on size, before any scan
        (b"[" * 5_000 + b"]" * 5_000, "nested deeper"),
        (b'{"s":' * 2_000 + b"1" + b"}" * 2_000, "nested deeper"),
        (b'[{"subscription": {}}]', "expected"),
        (b'"subscribe me"', "expected"),
        (b"42", "expected"),
        (b"", "expected"),
        (b'{"subscription": {"endpoint": "https://x/\\u0000"}}', "body.subscription.endpoint"),
        (b'{"subscription": {}, "consent_text_version": "' + b"v" * 101 + b'"}', "consent_text"),
        (b'{"subscription": {}, "token": ["t"]}', "token must be a string"),
        (b'{"subscription": {}, "token": "' + b"t" * 1001 + b'"}', "token is longer"),
        (b'{"pad": "' + b"x" * 20_000 + b'"}', "byte limit"),
    ],
)
def test_malformed_push_bodies_are_400_naming_the_problem(body: bytes, detail: str) -> None:
    before = STATE()
    started = time.monotonic()
    response = subscribe(body)
    assert response.status_code == 400, response.content
    assert detail in response.json()["detail"]
    assert time.monotonic() - started < 10  # a scan, not a recursion; generous for a busy box
    assert STATE() == before


def test_an_over_long_key_that_still_decodes_is_400_not_a_column_overflow() -> None:
    sub = _subscription()
    # The base64 decoder skips characters outside its alphabet: this decodes to the same key.
    sub["keys"]["p256dh"] = sub["keys"]["p256dh"] + "!" * 500
    response = subscribe(json.dumps({"subscription": sub}))
    assert response.status_code == 400
    assert "keys.p256dh is too long" in response.json()["detail"]


GOOD = _subscription()


def plausible_or_hostile(good: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    return st.one_of(good, good, hostile)


# Shaped like a real subscription, each value usually right: most examples get past the shape
# checks to the field validation and, now and then, to a stored subscription.
SUBSCRIPTION = st.fixed_dictionaries(
    {
        "endpoint": plausible_or_hostile(
            st.sampled_from(["https://fcm.googleapis.com/fcm/send/x", "http://127.0.0.1/x"]),
            HOSTILE_TEXT,
        ),
        "keys": plausible_or_hostile(
            st.fixed_dictionaries(
                {
                    "p256dh": plausible_or_hostile(st.just(GOOD["keys"]["p256dh"]), HOSTILE_TEXT),
                    "auth": plausible_or_hostile(st.just(GOOD["keys"]["auth"]), HOSTILE_TEXT),
                }
            ),
            json_values,
        ),
    },
    optional={"expirationTime": st.none() | HOSTILE_NUMBERS | st.integers()},
)
PUSH_BODY = st.fixed_dictionaries(
    {"subscription": plausible_or_hostile(SUBSCRIPTION, json_values)},
    optional={
        "token": st.text(max_size=30) | HOSTILE_TEXT,
        "consent_text_version": st.text(max_size=30) | HOSTILE_TEXT,
    },
)


@FUZZ
@given(body=st.one_of(PUSH_BODY.map(dumps), bodies(PUSH_BODY)))
def test_fuzz_push_subscribe_never_5xx_and_refusals_change_nothing(body: bytes) -> None:
    before = STATE()
    response = subscribe(body)
    assert response.status_code < 500, response.content[:300]
    event(f"answered {response.status_code}")
    if response.status_code >= 400:
        assert STATE() == before


# --- unsubscribe, confirm, preference centre ------------------------------------------------

FORM_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60) | (
    HOSTILE_TEXT.filter(lambda t: "\ud800" not in t)
)


PAGES = {
    # page: (valid link for a contact, path for a fuzzed token)
    "u": (lambda c: links.unsubscribe_url(contact_id=c.pk), "/u/{}/"),
    "u-preferences": (
        lambda c: links.unsubscribe_url(contact_id=c.pk) + "preferences/",
        "/u/{}/preferences/",
    ),
    "confirm": (
        lambda c: links.double_opt_in_url(contact_id=c.pk, purpose="marketing"),
        "/confirm/{}/",
    ),
    "preferences": (lambda c: links.preference_url(contact_id=c.pk), "/preferences/{}/"),
    "email-change": (
        lambda c: links.email_change_url(
            contact_id=c.pk, email="new@example.com", previous_email=c.email or ""
        ),
        "/preferences/email/{}/",
    ),
}


def _identifiers(contact: Contact) -> tuple[Any, ...]:
    return tuple(Contact.objects.values_list("email", "phone").get(pk=contact.pk))


@FUZZ
@given(
    page=st.sampled_from(sorted(PAGES)),
    token_kind=st.sampled_from(["valid", "fuzzed", "other kind"]),
    fuzzed_token=FORM_TEXT.filter(bool),
    form=st.dictionaries(
        st.sampled_from(["List-Unsubscribe", "email", "phone", "channel_email", "channel_sms"])
        | FORM_TEXT,
        FORM_TEXT | st.sampled_from(["One-Click", "on", "+14155550100", "a@example.com"]),
        max_size=5,
    ),
    user_agent=FORM_TEXT,
)
def test_fuzz_public_link_pages_never_5xx_and_refusals_change_nothing(
    page: str, token_kind: str, fuzzed_token: str, form: dict[str, str], user_agent: str
) -> None:
    contact = granted_contact()
    valid, fuzzed = PAGES[page]
    if token_kind == "valid":
        url = _path(valid(contact))
    elif token_kind == "other kind":
        # A real token of another kind of link (an unsubscribe token above all) opens nothing.
        other = "preferences" if page.startswith("u") else "u"
        token = _path(PAGES[other][0](contact)).strip("/").split("/")[-1]
        url = fuzzed.format(token)
    else:
        url = fuzzed.format(quote(fuzzed_token, safe=""))
    before, identifiers = STATE(), _identifiers(contact)
    mail.outbox = []
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client().post(
            url,
            data=urlencode(form),
            content_type="application/x-www-form-urlencoded",
            HTTP_USER_AGENT=user_agent,
        )
    assert response.status_code < 500, response.content[:300]
    event(f"{page} answered {response.status_code}")
    if response.status_code >= 400:
        assert STATE() == before
        assert _identifiers(contact) == identifiers
        assert mail.outbox == []
    if page == "u-preferences":
        # Whatever the form says, a preference link goes to the address on file or nowhere,
        # and the answer never carries it.
        assert all(m.to == [contact.email] for m in mail.outbox)
        assert len(mail.outbox) <= 1
        assert b"/preferences/" not in response.content.replace(url.encode(), b"")
        assert _identifiers(contact) == identifiers


def test_nul_in_the_preference_form_is_400_and_changes_nothing() -> None:
    contact = granted_contact()
    url = _path(links.preference_url(contact_id=contact.pk))
    before = STATE()
    response = client().post(url, {"email": "a\x00@example.com", "phone": "+1\x00"})
    assert response.status_code == 400
    assert STATE() == before
    assert settings.DEBUG is False  # the answers above are production's, not the debug page's


def test_nul_in_the_user_agent_of_a_one_click_unsubscribe_still_unsubscribes() -> None:
    contact = granted_contact()
    url = _path(links.unsubscribe_url(contact_id=contact.pk))
    response = client().post(
        url, data={"List-Unsubscribe": "One-Click"}, HTTP_USER_AGENT="mailer\x00"
    )
    assert response.status_code == 200
    event = ConsentEvent.objects.filter(contact=contact).latest("id")
    assert (event.action, event.user_agent) == ("revoke", "mailer\ufffd")


def test_an_email_valid_in_form_but_longer_than_its_column_is_400_naming_the_field() -> None:
    contact = granted_contact()
    url = _path(links.preference_url(contact_id=contact.pk))
    address = "a" * 64 + "@" + ("b" * 63 + ".") * 3 + "com"  # 260 characters, RFC-shaped
    before = STATE()
    response = client().post(url, {"email": address})
    assert response.status_code == 400
    assert b"254" in response.content
    assert STATE() == before
