from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from contacts.models import Contact
from continuity.sql import sql_any_of
from tests.contacts.factories import make_contact


def test_on_postgresql_a_long_id_list_is_one_array_parameter() -> None:
    sql, params = sql_any_of("id", list(range(1000)))

    assert sql == "id IN (SELECT unnest(%s::bigint[]))"
    assert params == [list(range(1000))]


def test_without_arrays_it_falls_back_to_in_and_an_empty_list_matches_nothing() -> None:
    sqlite: Any = SimpleNamespace(vendor="sqlite")

    assert sql_any_of("id", [3, 4], connection=sqlite) == ("id IN (%s, %s)", [3, 4])
    assert sql_any_of("id", [], connection=sqlite) == ("1 = 0", [])


@pytest.mark.django_db
def test_the_any_of_lookup_selects_exactly_the_listed_rows() -> None:
    kept = [make_contact(email=f"p{i}@example.com") for i in range(3)]
    make_contact(email="other@example.com")

    found = Contact.objects.filter(pk__any_of=[c.pk for c in kept[:2]])

    assert sorted(found.values_list("pk", flat=True)) == sorted(c.pk for c in kept[:2])
    assert "unnest" in str(found.query)
    assert not Contact.objects.filter(pk__any_of=[]).exists()


@pytest.mark.django_db
def test_the_any_of_lookup_works_on_a_foreign_key_too() -> None:
    from contacts.models import PushSubscription

    owner, other = make_contact(), make_contact()
    for n, contact in enumerate((owner, owner, other)):
        PushSubscription.objects.create(
            contact=contact, endpoint=f"https://push.example/{n}", p256dh="k", auth="a"
        )

    found = PushSubscription.objects.filter(contact_id__any_of=[owner.pk])

    assert sorted(found.values_list("endpoint", flat=True)) == [
        "https://push.example/0",
        "https://push.example/1",
    ]
