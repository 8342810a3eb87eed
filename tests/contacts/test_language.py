import pytest
from django.test import override_settings

from contacts.language import interface_language, primary_language, workspace_language
from continuity.models import Workspace


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("it-IT", "it"),
        ("it_IT", "it"),
        ("IT", "it"),
        ("de", "de"),
        ("", ""),
        ("1-2", ""),
        ("èè", ""),
        ("toolong", ""),
    ],
)
def test_primary_language_reads_the_primary_subtag(locale: str, expected: str) -> None:
    assert primary_language(locale) == expected


@override_settings(LANGUAGE_CODE="en")
def test_interface_language_falls_back_from_contact_to_workspace_to_install() -> None:
    rome = Workspace(slug="rome", name="Rome", language="it")
    assert interface_language("it_IT") == "it"
    assert interface_language("de-DE", rome) == "it"
    assert interface_language("de-DE") == "en"
    assert interface_language("", Workspace(slug="x", name="X", language="fr")) == "en"


@override_settings(LANGUAGE_CODE="en")
def test_workspace_language_is_the_default_content_language() -> None:
    assert workspace_language(Workspace(slug="rome", name="Rome", language="it-IT")) == "it"
    assert workspace_language(Workspace(slug="x", name="X")) == "en"
    assert workspace_language(None) == "en"
