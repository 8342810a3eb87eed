"""Normalising identifiers the same way everywhere (forms, API, import), with field-named errors."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext as _

from contacts.models import validate_timezone


class FieldError(ValueError):
    """One bad field: the message names the field so a row report can say what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _compiled(lazy: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(lazy.pattern, lazy.flags)


class _EmailValidator(EmailValidator):
    """Django's email rules exactly, with its patterns compiled once: Django compiles them
    lazily behind a proxy object, and going through the proxy on every match was a third of
    the check's cost (it runs once per imported row)."""

    user_regex = _compiled(EmailValidator.user_regex)
    domain_regex = _compiled(EmailValidator.domain_regex)
    literal_regex = _compiled(EmailValidator.literal_regex)


_validate_email = _EmailValidator()
EMAIL_MAX_LENGTH = 254  # Contact.email


def email_normalise(raw: str | None) -> str | None:
    """Trimmed and lower-cased (we treat addresses as case-insensitive, as every major
    mailbox provider does), or None when empty."""
    value = (raw or "").strip()
    if not value:
        return None
    value = value.lower()
    try:
        _validate_email(value)
    except ValidationError:
        raise FieldError(
            "email", _("%(value)s is not a valid email address") % {"value": repr(raw)}
        ) from None
    # Django's validator allows 320 characters; the column (RFC 5321's path limit) holds 254.
    if len(value) > EMAIL_MAX_LENGTH:
        raise FieldError(
            "email",
            _("an email address has at most %(count)s characters") % {"count": EMAIL_MAX_LENGTH},
        )
    return value


def default_phone_region() -> str | None:
    return getattr(settings, "CONTACTS_DEFAULT_PHONE_REGION", None) or None


def phone_normalise(raw: str | None, *, region: str | None = None) -> str | None:
    """E.164, or None when empty. A number without +country needs a default region."""
    value = (raw or "").strip()
    if not value:
        return None
    region = region or default_phone_region()
    if not value.startswith("+") and not value.startswith("00") and region is None:
        raise FieldError(
            "phone",
            _(
                "%(value)s has no country code and CONTACTS_DEFAULT_PHONE_REGION is not set: "
                "write it as +<country><number>"
            )
            % {"value": repr(raw)},
        )
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError(
            "phone",
            _("%(value)s is not a phone number (%(reason)s)") % {"value": repr(raw), "reason": exc},
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError("phone", _("%(value)s is not a valid phone number") % {"value": repr(raw)})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def timezone_normalise(raw: str | None) -> str:
    value = (raw or "").strip()
    try:
        validate_timezone(value)
    except ValidationError:
        raise FieldError(
            "timezone",
            _("unknown timezone %(value)s: use an IANA name such as Europe/Paris")
            % {"value": repr(value)},
        ) from None
    return value


# ISO 639-1: the two-letter language codes. A two-letter primary subtag outside it is a typo or an
# invention ("xx", "ir"), refused; three-letter subtags (ISO 639-2/3, thousands of them) are
# checked for their form only.
_ISO_639_1_CODES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv "
    "cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho "
    "hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku "
    "kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn "
    "no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm "
    "sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi "
    "vo wa wo xh yi yo za zh zu"
)
ISO_639_1 = frozenset(_ISO_639_1_CODES.split())
LOCALE_MAX_LENGTH = 35  # Contact.locale

# RFC 5646 "langtag" (grandfathered and private-use-only tags left out: no contact speaks them):
# language[-extlang]{0,3} [-script] [-region] (-variant)* (-extension)* [-x-private].
_LANGTAG = re.compile(
    r"""
    (?P<language>[a-z]{2,3})(?:-[a-z]{3}){0,3}
    (?:-(?P<script>[a-z]{4}))?
    (?:-(?P<region>[a-z]{2}|\d{3}))?
    (?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*
    (?:-[a-wyz\d](?:-[a-z\d]{2,8})+)*
    (?:-x(?:-[a-z\d]{1,8})+)?
    """,
    re.VERBOSE,
)


def locale_normalise(raw: str | None) -> str:
    """A contact's language as a BCP 47 tag in its conventional case (``it_IT`` -> ``it-IT``,
    ``EN-gb`` -> ``en-GB``; a POSIX ``.UTF-8`` or ``@euro`` suffix dropped), or "" when empty.
    A tag that is not one is a FieldError naming the field."""
    value = (raw or "").strip()
    if not value:
        return ""
    tag = re.split(r"[.@]", value, maxsplit=1)[0].replace("_", "-").lower()
    match = _LANGTAG.fullmatch(tag) if len(tag) <= LOCALE_MAX_LENGTH else None
    if match is None or (len(match["language"]) == 2 and match["language"] not in ISO_639_1):
        raise FieldError(
            "locale",
            _('"%(value)s" is not a language tag: use one such as it, it-IT or en-GB')
            % {"value": value},
        )
    subtags = tag.split("-")
    for index, subtag in enumerate(subtags[1:], start=1):
        if len(subtag) == 1:
            break  # extensions and private use keep their lower case
        if len(subtag) == 4 and subtag == match["script"]:
            subtags[index] = subtag.title()
        elif len(subtag) in (2, 3) and subtag == match["region"]:
            subtags[index] = subtag.upper()
    return "-".join(subtags)
