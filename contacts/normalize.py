"""Normalising identifiers the same way everywhere (forms, API, import), with field-named errors."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

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
        raise FieldError("email", f"{raw!r} is not a valid email address") from None
    # Django's validator allows 320 characters; the column (RFC 5321's path limit) holds 254.
    if len(value) > EMAIL_MAX_LENGTH:
        raise FieldError("email", f"an email address has at most {EMAIL_MAX_LENGTH} characters")
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
            f"{raw!r} has no country code and CONTACTS_DEFAULT_PHONE_REGION is not set: "
            "write it as +<country><number>",
        )
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError("phone", f"{raw!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError("phone", f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def timezone_normalise(raw: str | None) -> str:
    value = (raw or "").strip()
    try:
        validate_timezone(value)
    except ValidationError:
        raise FieldError(
            "timezone", f"unknown timezone {value!r}: use an IANA name such as Europe/Paris"
        ) from None
    return value
