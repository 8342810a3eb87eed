"""Which language a contact is addressed in.

A contact's ``locale`` is what their import, the API or the preference centre said (a BCP 47 tag
such as ``it-IT``, or a POSIX one such as ``it_IT``). Two readings of it:
- the content language: the primary subtag, for picking a campaign's content variant, which a
  marketer may write in any language;
- the interface language: one of settings.LANGUAGES, for the pages and mails the system itself
  renders (preference centre, confirmations, double opt-in).
Both fall back to the workspace's default language, then to the install's LANGUAGE_CODE.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation

from continuity.models import Workspace


def primary_language(locale: str) -> str:
    """``it-IT`` / ``it_IT`` / ``IT`` -> ``it``; empty or malformed -> empty."""
    primary = (locale or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary.isascii() and primary.isalpha() and 2 <= len(primary) <= 3 else ""


def workspace_language(workspace: Workspace | None) -> str:
    """The workspace's default content language, else the install's."""
    chosen = primary_language(workspace.language) if workspace is not None else ""
    return chosen or primary_language(settings.LANGUAGE_CODE) or "en"


def interface_language(locale: str, workspace: Workspace | None = None) -> str:
    """The supported interface language closest to ``locale``, else the workspace's, else the
    install's LANGUAGE_CODE."""
    for candidate in (locale, workspace.language if workspace is not None else ""):
        tag = (candidate or "").replace("_", "-").lower()
        if not tag:
            continue
        try:
            return translation.get_supported_language_variant(tag)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE
