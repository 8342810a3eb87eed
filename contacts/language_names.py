"""A contact's language in human words, for the admin and the preference centre.

The stored value stays the BCP 47 tag (contacts.normalize.locale_normalise); people choose and
read a language's name in their own interface language ("Italian" / "Italiano"), with the tag
alongside when it says more than the language (``it-CH``).
"""

from __future__ import annotations

from django.conf import settings
from django.conf.locale import LANG_INFO
from django.utils.translation import gettext

from contacts.language import primary_language

# Django's own list of languages with their English names (its catalog translates them): the
# primary languages only, regional variants are typed in imports or the API.
_NAMES = {
    code: info["name"]
    for code, info in LANG_INFO.items()
    if "-" not in code and "name" in info and "fallback" not in info
}


def language_name(locale: str) -> str:
    """``it`` -> "Italian" (translated), ``it-CH`` -> "Italian (it-CH)", an unlisted language
    -> its tag, "" -> ""."""
    if not locale:
        return ""
    name = _NAMES.get(primary_language(locale))
    if name is None:
        return locale
    if locale.lower() == primary_language(locale):
        return gettext(name)
    return f"{gettext(name)} ({locale})"


def language_choices(*, current: str = "", interface_only: bool = False) -> list[tuple[str, str]]:
    """(tag, name) pairs sorted by name in the active language, with ``current`` kept as a
    choice of its own when it is not a plain listed language (so that saving a form unchanged
    never rewrites ``it-CH`` as ``it``). ``interface_only``: the languages the pages speak."""
    codes = [code for code, _name in settings.LANGUAGES] if interface_only else list(_NAMES)
    choices = [(code, language_name(code)) for code in codes]
    if current and current not in {code for code, _label in choices}:
        choices.append((current, language_name(current)))
    return sorted(choices, key=lambda choice: choice[1].casefold())
