from __future__ import annotations

import pytest
from django.db import connection

from contacts.models import Contact
from continuity.sql import sql_any_of
from tests.contacts.factories import make_contact


def test_on_postgresql_a_long_id_list_is_one_array_parameter() -> None:
    sql, params = sql_any_of("id", list(range(1000)))

    assert sql == "id IN (SELECT unnest(%s::bigint[]))"
    assert params == [list(range(1000))]


@pytest.mark.django_db
def test_the_fragment_matches_exactly_the_listed_ids_and_an_empty_list_matches_nothing() -> None:
    kept = [make_contact(email=f"f{i}@example.com").pk for i in range(3)]
    table = Contact._meta.db_table

    def matched(ids: list[int]) -> list[int]:
        sql, params = sql_any_of("id", ids)
        with connection.cursor() as cursor:
            # The table name comes from model metadata; the values travel as a parameter.
            query = f"SELECT id FROM {table} WHERE {sql} ORDER BY id"  # noqa: S608
            cursor.execute(query, params)
            return [row[0] for row in cursor.fetchall()]

    assert matched([kept[0], kept[2], 0]) == [kept[0], kept[2]]
    assert matched([]) == []


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
            workspace=contact.workspace,
            contact=contact,
            endpoint=f"https://push.example/{n}",
            p256dh="k",
            auth="a",
        )

    found = PushSubscription.objects.filter(contact_id__any_of=[owner.pk])

    assert sorted(found.values_list("endpoint", flat=True)) == [
        "https://push.example/0",
        "https://push.example/1",
    ]
