"""Links do one thing each (#14): an unsubscribe link (it travels in every mail's headers, so a
forwarded mail carries it) only unsubscribes; the preference centre's own link is mailed to the
address on file and never shown to whoever asks; the preference centre never says whether
another contact holds an address; and the link key rotates without breaking links already sent.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.core import mail, signing
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
)
from tests.contacts.factories import granted_contact
from tests.contacts.test_views import _path
from tests.harness import redis_keys_delete
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db

NEUTRAL = b"If we have an email address for you, a link to manage your preferences is on its way"


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # Throttle keys name contact ids, which a new test database hands out again.
    redis_keys_delete(url=settings.REDIS_URL, prefix=settings.CACHES["default"]["KEY_PREFIX"])
    workspace_for_tests()


class _Client(Client):
    """Runs the on-commit callbacks of each request (the mails) as a real commit would: the
    test's own transaction never commits."""

    def request(self, **request: Any) -> Any:
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)


def client() -> Client:
    return _Client(raise_request_exception=False)


def _token(url: str) -> str:
    return _path(url).strip("/").split("/")[-1]


def _preference_tokens(content: bytes) -> list[str]:
    """Every /preferences/<token>/ path in a page or mail, whatever its host."""
    return re.findall(r"/preferences/([^/\"'\s<>]+)/", content.decode())


def _mailed_preference_path() -> str:
    assert len(mail.outbox) == 1, [m.to for m in mail.outbox]
    found = re.findall(r"https?://\S+/preferences/\S+/", str(mail.outbox[0].body))
    assert len(found) == 1, mail.outbox[0].body
    return _path(found[0])


# --- an unsubscribe link only unsubscribes -----------------------------------------------------


def test_a_forwarded_unsubscribe_link_unsubscribes_shows_no_details_and_opens_nothing() -> None:
    contact = granted_contact(email="owner@example.com", phone="+33612345678")
    url = _path(links.unsubscribe_url(contact_id=contact.pk))
    pages = [client().get(url), client().post(url, {"confirm": "yes"})]
    assert [p.status_code for p in pages] == [200, 200]
    for page in pages:
        assert b"owner@example.com" not in page.content
        assert b"612345678" not in page.content
        assert _preference_tokens(page.content) == []
    assert Consent.objects.get(contact=contact).state == ConsentState.REVOKED
    assert mail.outbox == []  # unsubscribing mails nobody

    # Nor does the token itself open the preference centre, to read or to write.
    token = _token(url)
    events = ConsentEvent.objects.count()
    for method in ("get", "post"):
        response = getattr(client(), method)(
            f"/preferences/{token}/", {"email": "thief@example.net", "channel_sms": "on"}
        )
        assert response.status_code == 400
        assert b"not valid" in response.content
        assert b"owner@example.com" not in response.content
    contact.refresh_from_db()
    assert (contact.email, str(contact.phone)) == ("owner@example.com", "+33612345678")
    assert ConsentEvent.objects.count() == events
    assert mail.outbox == []


# --- a preference link on request, mailed to the address on file --------------------------------


def test_asking_for_preferences_mails_the_address_on_file_and_shows_the_asker_nothing() -> None:
    contact = granted_contact(email="owner@example.com", phone="+33612345678")
    token = _token(links.unsubscribe_url(contact_id=contact.pk))
    response = client().post(
        f"/u/{token}/preferences/", {"email": "asker@example.net", "address": "asker@example.net"}
    )
    assert response.status_code == 200
    assert NEUTRAL in response.content
    assert b"owner@example.com" not in response.content and b"612345678" not in response.content
    assert _preference_tokens(response.content) == []
    # One mail, to the address we hold; nothing to the address the asker typed.
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    page = client().get(_mailed_preference_path())
    assert page.status_code == 200
    assert b"owner@example.com" in page.content


def test_a_browser_asks_from_the_unsubscribe_page_with_its_csrf_token() -> None:
    contact = granted_contact(email="owner@example.com")
    url = _path(links.unsubscribe_url(contact_id=contact.pk))
    browser = _Client(enforce_csrf_checks=True)
    page = browser.get(url)
    action = re.search(rb'<form method="post" action="([^"]+)">', page.content)
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert action is not None and csrf is not None
    assert action.group(1).decode() == url + "preferences/"
    forged = _Client(enforce_csrf_checks=True).post(action.group(1).decode())
    assert forged.status_code == 403
    asked = browser.post(action.group(1).decode(), {"csrfmiddlewaretoken": csrf.group(1).decode()})
    assert asked.status_code == 200 and NEUTRAL in asked.content
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]


def test_the_answer_is_the_same_whether_the_contact_has_an_email_or_not() -> None:
    with_email = granted_contact(email="someone@example.com")
    without = granted_contact(channel=Channel.SMS, email=None, phone="+14155550100")
    answers = [
        client().post(
            _path(links.unsubscribe_url(contact_id=c.pk, channel=channel)) + "preferences/"
        )
        for c, channel in ((with_email, Channel.EMAIL), (without, Channel.SMS))
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert NEUTRAL in answers[0].content
    assert [m.to for m in mail.outbox] == [["someone@example.com"]]


def test_a_second_request_within_the_interval_sends_nothing_more_and_answers_the_same() -> None:
    contact = granted_contact(email="owner@example.com")
    other = granted_contact(email="other@example.com")
    url = _path(links.unsubscribe_url(contact_id=contact.pk)) + "preferences/"
    first, second = client().post(url), client().post(url)
    assert first.content == second.content and second.status_code == 200
    assert len(mail.outbox) == 1
    # The throttle is per contact: another contact's request still goes out.
    client().post(_path(links.unsubscribe_url(contact_id=other.pk)) + "preferences/")
    assert [m.to for m in mail.outbox] == [["owner@example.com"], ["other@example.com"]]


def test_without_the_cache_no_preference_link_is_sent_and_the_answer_is_unchanged() -> None:
    contact = granted_contact(email="owner@example.com")
    url = _path(links.unsubscribe_url(contact_id=contact.pk)) + "preferences/"
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    with override_settings(CACHES=unreachable):
        response = client().post(url)
    assert response.status_code == 200
    assert NEUTRAL in response.content
    assert mail.outbox == []


def test_a_tampered_or_expired_unsubscribe_link_asks_for_nothing() -> None:
    contact = granted_contact()
    token = _token(links.unsubscribe_url(contact_id=contact.pk))
    response = client().post(f"/u/{token[:-2]}xx/preferences/")
    assert response.status_code == 400
    assert b"not valid" in response.content
    assert client().get(f"/u/{token}/preferences/").status_code == 405
    assert mail.outbox == []


def test_a_preference_link_lives_a_day_and_an_unsubscribe_link_half_a_year(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    contact = granted_contact()
    real = time.time
    monkeypatch.setattr("django.core.signing.time.time", lambda: real() - 2 * 86400)
    preference = _path(links.preference_url(contact_id=contact.pk))
    unsubscribe = _path(links.unsubscribe_url(contact_id=contact.pk))
    monkeypatch.setattr("django.core.signing.time.time", real)
    expired = client().get(preference)
    assert expired.status_code == 400 and b"expired" in expired.content
    assert client().get(unsubscribe).status_code == 200


# --- the preference centre never says whether another contact holds an address ------------------


def _change_email(contact: Contact, address: str) -> Any:
    return client().post(
        _path(links.preference_url(contact_id=contact.pk)),
        {"email": address, "channel_email": "on"},
    )


def test_changing_to_a_taken_email_answers_like_a_free_one_and_changes_nothing_yet() -> None:
    granted_contact(email="taken@example.com")
    first = granted_contact(email="first@example.com")
    second = granted_contact(email="second@example.com")
    to_taken = _change_email(first, "taken@example.com")
    to_free = _change_email(second, "free@example.com")
    assert [to_taken.status_code, to_free.status_code] == [200, 200]
    for response, address in ((to_taken, b"taken@example.com"), (to_free, b"free@example.com")):
        assert b"We sent a link to " + address in response.content
        assert b"already" not in response.content and b"registered" not in response.content
    # The pages differ only by the contact's own data and the address each typed.
    normalised = [
        re.sub(rb"csrfmiddlewaretoken\" value=\"[^\"]+|data-token=\"[^\"]+", b"", r.content)
        .replace(own, b"OWN")
        .replace(typed, b"TYPED")
        for r, own, typed in (
            (to_taken, b"first@example.com", b"taken@example.com"),
            (to_free, b"second@example.com", b"free@example.com"),
        )
    ]
    assert normalised[0] == normalised[1]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.email, second.email) == ("first@example.com", "second@example.com")
    assert sorted(m.to[0] for m in mail.outbox) == ["free@example.com", "taken@example.com"]


def _confirm_path(to: str) -> str:
    body = next(str(m.body) for m in mail.outbox if m.to == [to])
    found = re.findall(r"https?://\S+/preferences/email/\S+/", body)
    assert len(found) == 1, body
    return _path(found[0])


def test_the_new_address_confirms_the_change_and_only_its_owner_hears_it_is_taken() -> None:
    holder = granted_contact(email="taken@example.com")
    first = granted_contact(email="first@example.com")
    second = granted_contact(email="second@example.com")
    _change_email(first, "taken@example.com")
    _change_email(second, "free@example.com")

    free = _confirm_path("free@example.com")
    assert client().get(free).status_code == 200  # mail scanners follow GETs: nothing changes
    second.refresh_from_db()
    assert second.email == "second@example.com"
    assert client().post(free).status_code == 200
    second.refresh_from_db()
    assert second.email == "free@example.com"
    assert ConsentEvent.objects.filter(
        contact=second, action=ConsentAction.DETAILS, source=ConsentSource.PREFERENCE_CENTRE
    ).exists()

    refused = client().post(_confirm_path("taken@example.com"))
    assert refused.status_code == 409
    assert b"cannot be used for this subscription" in refused.content
    first.refresh_from_db()
    holder.refresh_from_db()
    assert (first.email, holder.email) == ("first@example.com", "taken@example.com")


def test_an_email_change_link_is_stale_once_the_address_changed_again() -> None:
    contact = granted_contact(email="first@example.com")
    stale = links.email_change_url(
        contact_id=contact.pk, email="one@example.com", previous_email="first@example.com"
    )
    fresh = links.email_change_url(
        contact_id=contact.pk, email="two@example.com", previous_email="first@example.com"
    )
    assert client().post(_path(fresh)).status_code == 200
    again = client().post(_path(fresh))  # opened twice: still done, nothing new
    assert again.status_code == 200
    response = client().post(_path(stale))
    assert response.status_code == 409
    assert b"out of date" in response.content
    contact.refresh_from_db()
    assert contact.email == "two@example.com"


def test_email_change_confirmations_are_throttled_per_contact() -> None:
    contact = granted_contact(email="first@example.com")
    _change_email(contact, "one@example.com")
    second = _change_email(contact, "two@example.com")
    assert second.status_code == 200
    assert b"a short while ago" in second.content
    assert [m.to for m in mail.outbox] == [["one@example.com"]]


def test_a_taken_phone_number_is_answered_like_a_free_one_and_not_applied() -> None:
    granted_contact(phone="+14155550100")
    first = granted_contact(phone="+14155550111")
    second = granted_contact(phone="+14155550122")
    answers = [
        client().post(
            _path(links.preference_url(contact_id=c.pk)),
            {"email": c.email, "phone": number, "channel_email": "on"},
        )
        for c, number in ((first, "+14155550100"), (second, "+14155550133"))
    ]
    assert [a.status_code for a in answers] == [200, 200]
    for answer, number in zip(answers, (b"+14155550100", b"+14155550133"), strict=True):
        assert b"Saved: phone changed." in answer.content
        assert b'value="' + number + b'"' in answer.content
        assert b"already" not in answer.content
    first.refresh_from_db()
    second.refresh_from_db()
    assert (str(first.phone), str(second.phone)) == ("+14155550111", "+14155550133")
    note = ConsentEvent.objects.filter(contact=first, action=ConsentAction.DETAILS).get().note
    assert "not applied" in note  # staff see why in the consent history


# --- the link key and its rotation ----------------------------------------------------------------

OLD_KEY = "old-link-key-" + "o" * 50
NEW_KEY = "new-link-key-" + "n" * 50


def _one_click(url: str) -> Any:
    return client().post(_path(url), {"List-Unsubscribe": "One-Click"})


def test_a_link_signed_with_the_old_key_works_while_listed_and_is_a_clear_400_once_dropped() -> (
    None
):
    first, second = granted_contact(), granted_contact()
    with override_settings(CONTACTS_LINK_SIGNING_KEY=OLD_KEY):
        old_links = [links.unsubscribe_url(contact_id=c.pk) for c in (first, second)]
    with override_settings(
        CONTACTS_LINK_SIGNING_KEY=NEW_KEY, CONTACTS_LINK_SIGNING_KEY_FALLBACKS=[OLD_KEY]
    ):
        rotated = _one_click(old_links[0])
    assert rotated.status_code == 200, rotated.content
    assert Consent.objects.get(contact=first).state == ConsentState.REVOKED

    with override_settings(
        CONTACTS_LINK_SIGNING_KEY=NEW_KEY, CONTACTS_LINK_SIGNING_KEY_FALLBACKS=[]
    ):
        dropped = [_one_click(old_links[1]), client().get(_path(old_links[1]))]
    assert [r.status_code for r in dropped] == [400, 400]
    assert all(b"this link is not valid" in r.content for r in dropped)
    assert Consent.objects.get(contact=second).state == ConsentState.GRANTED


def test_links_are_signed_with_the_link_key_not_the_secret_key() -> None:
    contact = granted_contact()
    with override_settings(CONTACTS_LINK_SIGNING_KEY=NEW_KEY):
        token = _token(links.unsubscribe_url(contact_id=contact.pk))
    signing.loads(token, key=NEW_KEY, salt=links.SALT_UNSUBSCRIBE)
    with pytest.raises(signing.BadSignature):
        signing.loads(token, salt=links.SALT_UNSUBSCRIBE)  # SECRET_KEY
    # Nor do SECRET_KEY's own fallbacks open links: the link key's list is the only one.
    with override_settings(
        CONTACTS_LINK_SIGNING_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[NEW_KEY], SECRET_KEY=NEW_KEY
    ):
        assert _one_click(f"/u/{token}/").status_code == 400


def test_in_the_sandbox_the_key_is_the_secret_key_so_links_sent_before_it_still_work() -> None:
    contact = granted_contact()
    # A token as signed before the link key existed: Django's default key, SECRET_KEY.
    token = signing.dumps(
        {"c": contact.pk, "ch": "email"}, salt=links.SALT_UNSUBSCRIBE, compress=True
    )
    assert settings.CONTACTS_LINK_SIGNING_KEY == settings.SECRET_KEY
    assert _one_click(f"/u/{token}/").status_code == 200
    assert Consent.objects.get(contact=contact).state == ConsentState.REVOKED
