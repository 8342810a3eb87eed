"""What a contact attribute may be called: one rule for imports, the API and segment rules.

An attribute name is used three ways: as a JSON key in ``Contact.attributes``, as the key of a
segment rule (compiled to ``attributes -> 'key'``), and as a merge field in message templates
(``{{ key }}``). The rule is the intersection of what all three can address safely:

- ASCII letters, digits and ``_``, starting with a letter: a template variable cannot start with
  ``_`` or hold ``-``, and PostgreSQL's ``->`` reads an all-digit key as an array index;
- no ``__``: Django reads it as a lookup separator (``city__regex`` would be a regex filter);
- at most 64 characters.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

ATTRIBUTE_KEY_MAX_LENGTH = 64
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# A refused key is echoed back in the message; a megabyte of it is not.
_SHOWN = 80


def attribute_key_problem(key: object) -> str | None:
    """Why ``key`` cannot name a contact attribute, as a sentence naming it; None when it can."""
    if not isinstance(key, str):
        return _("An attribute name must be text, not %(type)s.") % {"type": type(key).__name__}
    shown = key if len(key) <= _SHOWN else f"{key[:_SHOWN]}…"
    if len(key) > ATTRIBUTE_KEY_MAX_LENGTH or "__" in key or _ATTRIBUTE_KEY.fullmatch(key) is None:
        return _(
            "“%(key)s” is not a valid attribute name: use at most %(max)d letters, digits and "
            "single underscores, starting with a letter."
        ) % {"key": shown, "max": ATTRIBUTE_KEY_MAX_LENGTH}
    return None
