from __future__ import annotations

from typing import Any

import pytest

from contacts.errors import InvalidSegment
from contacts.models import Segment
from contacts.segments import contacts_matching
from contacts.selectors import consent_allows, segment_contacts
from contacts.upsert import contacts_upsert_rows
from tests.contacts.factories import granted_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture
def people() -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "a@x.io", "tags": ["fr", "vip"], "attributes": {"age": 30, "plan": "gold"}},
            {"email": "b@x.io", "tags": ["fr"], "attributes": {"age": 17, "plan": "free"}},
            {"email": "c@x.io", "tags": ["de", "vip"], "attributes": {"plan": "gold"}},
            {"email": "d@x.io", "tags": [], "attributes": {"age": 45}},
        ],
        blank_means_unchanged=False,
    )


def _emails(**definition: Any) -> set[str]:
    return {
        c.email for c in contacts_matching(workspace=workspace_for_tests(), **definition) if c.email
    }


def test_tags_any_all_and_none_combine(people: None) -> None:
    assert _emails(tags_any=["vip", "de"]) == {"a@x.io", "c@x.io"}
    assert _emails(tags_all=["fr", "vip"]) == {"a@x.io"}
    assert _emails(tags_none=["fr"]) == {"c@x.io", "d@x.io"}
    assert _emails(tags_any=["vip"], tags_none=["de"]) == {"a@x.io"}


def test_attribute_filters_compare_json_values(people: None) -> None:
    f = "attribute_filters"
    assert _emails(**{f: [{"key": "age", "op": "gte", "value": 18}]}) == {"a@x.io", "d@x.io"}
    assert _emails(**{f: [{"key": "plan", "op": "in", "value": ["gold"]}]}) == {"a@x.io", "c@x.io"}
    assert _emails(**{f: [{"key": "age", "op": "missing"}]}) == {"c@x.io"}
    assert _emails(**{f: [{"key": "plan", "op": "ne", "value": "gold"}]}) == {"b@x.io", "d@x.io"}


@pytest.mark.parametrize(
    "definition",
    [
        {"tags_any": "vip"},
        {"attribute_filters": [{"key": "a b", "op": "eq", "value": 1}]},
        {"attribute_filters": [{"key": "age", "op": "gt", "value": [1]}]},
        {"attribute_filters": {"key": "age"}},
    ],
)
def test_bad_definitions_are_refused_naming_the_part(definition: dict[str, Any]) -> None:
    with pytest.raises(InvalidSegment):
        contacts_matching(workspace=workspace_for_tests(), **definition)


def test_a_segment_is_one_query_and_consent_allows_is_one_query(
    people: None, django_assert_num_queries: Any
) -> None:
    segment = Segment.objects.create(workspace=workspace_for_tests(), name="vip", tags_any=["vip"])
    with django_assert_num_queries(1):
        assert segment_contacts(segment).count() == 2
    ids = [granted_contact().pk for _ in range(20)]
    with django_assert_num_queries(1):
        assert consent_allows(contact_ids=ids, channel="email", purpose="marketing") == set(ids)


def test_contact_find_normalises_what_providers_send() -> None:
    from contacts.selectors import contact_find

    contact = granted_contact(email="find.me@example.com", phone="+33612345678")
    assert contact_find(workspace=workspace_for_tests(), email="  FIND.ME@example.com ") == contact
    assert contact_find(workspace=workspace_for_tests(), phone="+33 6 12 34 56 78") == contact
    assert contact_find(workspace=workspace_for_tests(), phone="garbage") is None
    assert contact_find(workspace=workspace_for_tests(), email="nobody@example.com") is None


def test_consent_filters_for_several_channels_combine_on_one_queryset() -> None:
    from contacts.consent import consent_grant
    from contacts.selectors import contacts_consented
    from tests.contacts.factories import evidence

    both = granted_contact()
    consent_grant(contact=both, channel="sms", purpose="marketing", evidence=evidence())
    granted_contact()  # email only
    email = contacts_consented(channel="email", purpose="marketing")
    assert list(contacts_consented(channel="sms", purpose="marketing", base=email)) == [both]
