"""The demo's Italian businesses (#17): Italian by default, on Rome's clock, with Italian SMS
keywords; their customers mostly Italian, some English."""

from __future__ import annotations

from typing import Any

import pytest

from contacts.language import interface_language
from contacts.models import Contact
from continuity.models import Workspace
from sandbox.demo import DEMO_WORKSPACE_SLUGS, demo_seed

pytestmark = pytest.mark.django_db


def test_the_demo_workspaces_are_italian_and_their_contacts_speak_their_own_languages(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    demo_seed(contacts=200)
    for workspace in Workspace.objects.filter(slug__in=DEMO_WORKSPACE_SLUGS):
        assert (workspace.language, workspace.timezone) == ("it", "Europe/Rome")
        assert "ANNULLA" in workspace.sms_stop_keywords
        contacts = Contact.objects.for_workspace(workspace)
        by_zone = dict(contacts.values_list("timezone", "locale").distinct())
        assert by_zone["Europe/Rome"] == "it-IT"
        assert by_zone["Europe/London"] == "en-GB"
        languages = {interface_language(c.locale, workspace) for c in contacts}
        assert languages == {"it", "en"}
