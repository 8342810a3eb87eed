"""Merge fields into short texts (SMS bodies, push titles): Django templates, with a fast path.

Most of these texts only drop values in (``Hi {{ first_name }}``). For exactly that subset the
output of a regex substitution is the same as Django's (missing names render as "", values as
str, autoescape off), at a tenth of the cost, which matters at thousands of pushes per second.
Anything else (filters, tags) is rendered by Django's template engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from django.template import engines

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SYNTAX = re.compile(r"\{[{%#]")


def merge_template_compile(*, source: str) -> Callable[[Mapping[str, str]], str]:
    """A renderer for ``source``; call it with one recipient's merge fields."""
    stripped = _PLACEHOLDER.sub("", source)
    if not _SYNTAX.search(stripped):
        if not _PLACEHOLDER.search(source):
            return lambda fields: source

        def substitute(fields: Mapping[str, str]) -> str:
            return _PLACEHOLDER.sub(lambda m: str(fields.get(m[1], "")), source)

        return substitute
    template = engines["django"].from_string(f"{{% autoescape off %}}{source}{{% endautoescape %}}")
    return lambda fields: template.render(dict(fields))
