from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from contacts.normalize import FieldError, email_normalise

ADDRESSES = [
    "ann@example.com",
    "Ann.Lee+news@Example.CO.uk",
    '"quoted local"@example.com',
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    "user@[999.1.1.1]",
    "root@localhost",
    "zoë@exämple.de",
    "a@b",
    "no-at-sign",
    "two@@example.com",
    "trailing.dot.@example.com",
    "x@-example.com",
    "x@example..com",
    "x" * 310 + "@example.com",
]


def _django_accepts(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_normalise_accepts_exactly_what_djangos_validator_accepts(address: str) -> None:
    expected = _django_accepts(address.lower())
    if expected:
        assert email_normalise(f"  {address} ") == address.lower()
    else:
        with pytest.raises(FieldError, match="not a valid email address"):
            email_normalise(address)
