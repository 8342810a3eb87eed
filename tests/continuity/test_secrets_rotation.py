"""Keys that encrypt or hash stored data survive a SECRET_KEY rotation and rotate on their own:
monitor source secrets (OUTAGES_CREDENTIAL_KEY + fallbacks, moved by `secrets_rotate`) and
erasure hashes (CONTACTS_ERASURE_HASH_KEY + fallbacks, matched under every key)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from contacts.consent import subject_hash
from contacts.models import ConsentEvent
from contacts.privacy import contact_erase, erased_evidence_find, erasure_subject_hashes
from outages.credentials import credential_issue, source_cache_clear, source_secrets
from outages.models import MonitorCredential
from tests.contacts.factories import granted_contact
from tests.outages.factories import SECRET, sample_bytes, source_create

pytestmark = [pytest.mark.django_db]

OLD_SECRET_KEY = "old-secret-key-" + "o" * 50
NEW_SECRET_KEY = "new-secret-key-" + "n" * 50


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.fixture
def keys(settings: Any) -> Any:
    settings.SECRET_KEY = OLD_SECRET_KEY
    settings.SECRET_KEY_FALLBACKS = []
    settings.OUTAGES_CREDENTIAL_KEY = ""
    settings.OUTAGES_CREDENTIAL_KEY_FALLBACKS = []
    settings.CONTACTS_ERASURE_HASH_KEY_FALLBACKS = []
    settings.SOCIAL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    return settings


def monitor_post(slug: str, secret: str) -> int:
    source_cache_clear()  # what the TTL does for other processes
    response = Client().post(
        f"/hooks/monitors/{slug}/",
        data=sample_bytes("alertmanager", "firing"),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    return response.status_code


# --- monitor source secrets -----------------------------------------------------------------------


def test_monitor_secrets_derived_from_secret_key_survive_its_rotation_with_fallbacks(
    keys: Any,
) -> None:
    source = source_create(kind="alertmanager")  # encrypted under a key derived from SECRET_KEY
    assert monitor_post(source.slug, SECRET) == 200

    keys.SECRET_KEY = NEW_SECRET_KEY
    assert monitor_post(source.slug, SECRET) == 401, "without the old key nothing opens"
    keys.SECRET_KEY_FALLBACKS = [OLD_SECRET_KEY]
    assert monitor_post(source.slug, SECRET) == 200

    out = _Out()
    call_command("secrets_rotate", stdout=out)
    assert "outages.MonitorCredential.secret_encrypted: 1 re-encrypted" in out.text
    keys.SECRET_KEY_FALLBACKS = []  # the old key is dropped after the rotation
    assert monitor_post(source.slug, SECRET) == 200


def test_an_install_moves_its_monitor_secrets_to_a_key_of_their_own_then_rotates_it(
    keys: Any,
) -> None:
    source = source_create(kind="alertmanager")
    before = MonitorCredential.objects.get(source=source).secret_encrypted

    # Production sets its own key: what SECRET_KEY encrypted still opens, and the rotation moves
    # it, after which SECRET_KEY can change freely.
    keys.SANDBOX_ENABLED = False
    keys.OUTAGES_CREDENTIAL_KEY = "outages-key-one-" + "1" * 40
    assert source_secrets(source=source) == [SECRET]
    call_command("secrets_rotate", stdout=_Out())
    assert MonitorCredential.objects.get(source=source).secret_encrypted != before
    keys.SECRET_KEY = NEW_SECRET_KEY
    assert source_secrets(source=source) == [SECRET]

    # Its own rotation: the new key first, the old one a fallback until the rotation ran.
    keys.OUTAGES_CREDENTIAL_KEY = "outages-key-two-" + "2" * 40
    keys.OUTAGES_CREDENTIAL_KEY_FALLBACKS = ["outages-key-one-" + "1" * 40]
    assert monitor_post(source.slug, SECRET) == 200
    out = _Out()
    call_command("secrets_rotate", stdout=out)
    assert "outages.MonitorCredential.secret_encrypted: 1 re-encrypted, 0 already current" in (
        out.text
    )
    keys.OUTAGES_CREDENTIAL_KEY_FALLBACKS = []
    assert monitor_post(source.slug, SECRET) == 200
    again = _Out()
    call_command("secrets_rotate", stdout=again)
    assert "outages.MonitorCredential.secret_encrypted: 0 re-encrypted, 1 already current" in (
        again.text
    )


def test_outside_the_sandbox_no_monitor_secret_is_encrypted_without_its_own_key(
    keys: Any,
) -> None:
    source = source_create(kind="alertmanager")
    keys.SANDBOX_ENABLED = False
    with pytest.raises(ImproperlyConfigured, match="OUTAGES_CREDENTIAL_KEY is not set"):
        credential_issue(source=source, secret="another-secret-0123456789")
    assert MonitorCredential.objects.filter(source=source).count() == 1


def test_a_monitor_secret_no_key_opens_is_reported_and_left_in_place(keys: Any) -> None:
    source = source_create(kind="alertmanager")
    stored = MonitorCredential.objects.get(source=source).secret_encrypted
    keys.SECRET_KEY = NEW_SECRET_KEY  # the old key lost, no fallback

    with pytest.raises(CommandError, match="1 stored secret"):
        call_command("secrets_rotate", stdout=_Out())
    assert MonitorCredential.objects.get(source=source).secret_encrypted == stored


# --- erasure hashes -------------------------------------------------------------------------------


def test_erased_evidence_still_matches_after_secret_key_and_erasure_key_rotations(
    keys: Any,
) -> None:
    # The sandbox default: the erasure key is SECRET_KEY (what installs without a key of their
    # own had before).
    keys.CONTACTS_ERASURE_HASH_KEY = OLD_SECRET_KEY
    contact = granted_contact(email="erased.person@example.com")
    workspace_id = contact.workspace_id
    contact_erase(contact=contact, recorded_by="tests")
    evidence = set(ConsentEvent.objects.filter(contact=contact).values_list("pk", flat=True))
    assert len(evidence) >= 2

    def found() -> set[int]:
        return set(
            erased_evidence_find(
                workspace_id=workspace_id, identifier="  Erased.Person@example.com "
            ).values_list("pk", flat=True)
        )

    assert found() == evidence
    # SECRET_KEY rotates and the erasure key becomes its own: matching tries the fallbacks.
    keys.SECRET_KEY = NEW_SECRET_KEY
    keys.CONTACTS_ERASURE_HASH_KEY = "erasure-key-one-" + "1" * 40
    assert found() == set(), "the old hashes are under the old SECRET_KEY"
    keys.SECRET_KEY_FALLBACKS = [OLD_SECRET_KEY]
    assert found() == evidence

    # A second person erased under the erasure key, which then rotates in turn.
    second = granted_contact(email="second.person@example.com", workspace_id=workspace_id)
    contact_erase(contact=second)
    keys.CONTACTS_ERASURE_HASH_KEY = "erasure-key-two-" + "2" * 40
    keys.CONTACTS_ERASURE_HASH_KEY_FALLBACKS = ["erasure-key-one-" + "1" * 40]
    assert (
        erased_evidence_find(workspace_id=workspace_id, identifier="second.person@example.com")
        .filter(contact=second)
        .exists()
    )
    # Another workspace's evidence is never found by this workspace's lookup.
    assert not erased_evidence_find(
        workspace_id=workspace_id + 10_000, identifier="second.person@example.com"
    ).exists()


def test_the_current_erasure_key_hashes_as_erasure_does(keys: Any) -> None:
    keys.CONTACTS_ERASURE_HASH_KEY = "erasure-key-one-" + "1" * 40
    assert erasure_subject_hashes(identifier="A@Example.com ")[0] == subject_hash("a@example.com")


def test_erasure_refuses_to_run_without_an_erasure_key(keys: Any) -> None:
    contact = granted_contact(email="kept.person@example.com")
    keys.CONTACTS_ERASURE_HASH_KEY = ""

    with pytest.raises(ImproperlyConfigured, match="CONTACTS_ERASURE_HASH_KEY is not set"):
        contact_erase(contact=contact)
    contact.refresh_from_db()
    assert contact.email == "kept.person@example.com"
    assert contact.erased_at is None
