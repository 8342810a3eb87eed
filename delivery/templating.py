"""The template language marketers write in: message subjects and bodies, SMS, push texts and
WhatsApp parameters. One restricted Django template engine, one validator, one renderer.

The project's own engine (``engines["django"]``) can read files (``{% include %}``,
``{% extends %}``), load every template library of every installed app (``{% load %}``), and
dump its context (``{% debug %}``). Marketer text gets none of that: this engine has no loaders,
no libraries and only the tags and filters below, which cannot reach files, settings, URLs or
other objects, and cannot multiply the work of one render. Every merge field is text, so:

- no ``{% for %}`` (it would only iterate over the characters of a name, and nested loops
  multiply a render's cost per recipient);
- no ``date``/``time`` filters (they cannot format text, and fail on it: ``{% now %}`` gives
  today's date);
- no ``safe``, ``{% autoescape %}`` or padding filters (``ljust:"1000000"``): escaping is decided
  by the part being rendered (HTML email escapes merge fields, text parts don't), and output
  stays about as long as the input.

Templates are checked when they are saved (``marketer_template_validate``, a model field
validator); a template saved before these rules that no longer compiles raises
``MarketerTemplateError`` at send time, and the senders fail its deliveries with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.template import Context, Engine, Library, Template, defaultfilters, defaulttags
from django.utils.translation import gettext as _

ALLOWED_TAGS = (
    "comment",
    "firstof",
    "if",
    "now",
    "spaceless",
    "templatetag",
    "verbatim",
    "with",
)
ALLOWED_FILTERS = (
    "capfirst",
    "cut",
    "default",
    "default_if_none",
    "length",
    "linebreaksbr",
    "lower",
    "pluralize",
    "slugify",
    "striptags",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "urlencode",
    "wordcount",
    "yesno",
)
# The Delivery.error_code of a delivery whose message's template cannot be rendered.
TEMPLATE_INVALID = "template_invalid"

register = Library()
for _name in ALLOWED_TAGS:
    register.tag(_name, defaulttags.register.tags[_name])
for _name in ALLOWED_FILTERS:
    # The functions keep the flags (is_safe, needs_autoescape) Django registered them with.
    register.filter(_name, defaultfilters.register.filters[_name])

# Django's own wording, parsed only to say it in a marketer's words; anything else is shown
# as Django says it.
_UNKNOWN_TAG = re.compile(r"^Invalid block tag on line \d+: '([^']*)'")
_UNKNOWN_FILTER = re.compile(r"^Invalid filter: '([^']*)'")


class MarketerTemplateError(ValueError):
    """A marketer's template that cannot be compiled or rendered; str() is a plain sentence
    with the line and what is wrong."""


class _MarketerEngine(Engine):
    # Engine adds these to whatever `builtins` it is given: none of Django's tags and filters
    # here, only the allow-listed ones registered above.
    default_builtins: list[str] = []


@cache
def _engine() -> Engine:
    return _MarketerEngine(
        loaders=[],  # nothing can be read from disk, whatever tag asks
        libraries={},  # `{% load %}` is not a tag here, and there would be nothing to load
        builtins=["delivery.templating"],
        string_if_invalid="",
        debug=False,
    )


def _describe(exc: Exception) -> str:
    token = getattr(exc, "token", None)
    line = getattr(token, "lineno", None) or 1
    text = str(exc)
    if match := _UNKNOWN_TAG.match(text):
        return _(
            "Line %(line)d: the tag {%% %(tag)s %%} is not allowed. Allowed tags: %(allowed)s."
        ) % {"line": line, "tag": match[1], "allowed": ", ".join(ALLOWED_TAGS)}
    if match := _UNKNOWN_FILTER.match(text):
        return _(
            "Line %(line)d: the filter “%(filter)s” is not allowed. Allowed filters: %(allowed)s."
        ) % {"line": line, "filter": match[1], "allowed": ", ".join(ALLOWED_FILTERS)}
    return _("Line %(line)d: %(error)s") % {"line": line, "error": text}


def marketer_template_compile(source: str) -> Template:
    """``source`` compiled by the restricted engine; MarketerTemplateError says why not."""
    try:
        return _engine().from_string(source)
    except Exception as exc:  # a tag's compile function may raise any error; each is the text's
        raise MarketerTemplateError(_describe(exc)) from None


def marketer_template_render(
    template: Template, fields: Mapping[str, Any], *, autoescape: bool
) -> str:
    """One recipient's text. ``autoescape`` is True for HTML parts only. A plain str (never
    marked safe), so a page that shows it escapes it."""
    try:
        rendered = template.render(Context(dict(fields), autoescape=autoescape))
    except Exception as exc:  # a filter failing on one value must not take the batch down
        raise MarketerTemplateError(
            _("The template could not be rendered: %(error)s") % {"error": exc}
        ) from None
    # Template.render() marks its result safe, and f"{...}" or str() keep that mark:
    # str.__str__ makes a plain copy, which any page showing it will escape.
    return str.__str__(rendered)


def marketer_template_problem(source: str) -> str | None:
    """Why ``source`` cannot be used as a template, as a sentence; None when it can."""
    try:
        marketer_template_compile(source)
    except MarketerTemplateError as exc:
        return str(exc)
    return None


def marketer_template_validate(source: str) -> None:
    """Field validator for every text a marketer writes as a template."""
    if source and (problem := marketer_template_problem(source)) is not None:
        raise ValidationError(problem, code=TEMPLATE_INVALID)
