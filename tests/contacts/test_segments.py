from __future__ import annotations

from typing import Any

import pytest

from contacts.errors import InvalidSegment
from contacts.models import Contact, Segment
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


NOT_PLAIN_NAMES = [
    "city__regex",
    "city__isnull",
    "plan__gte",
    "_private",
    "1st_city",
    "loyalty-tier",
    "a b",
    "city\n",
    "città",
    "x" * 65,
]


@pytest.mark.parametrize("key", NOT_PLAIN_NAMES)
def test_a_rule_key_that_is_not_a_plain_attribute_name_is_refused_naming_it(key: str) -> None:
    with pytest.raises(InvalidSegment) as refused:
        contacts_matching(
            workspace=workspace_for_tests(),
            attribute_filters=[{"key": key, "op": "eq", "value": "x"}],
        )
    assert "attribute_filters[0].key" in str(refused.value.detail)
    assert key.strip()[:60] in str(refused.value.detail)


@pytest.mark.parametrize("key", [5, None, ["plan"]])
def test_a_rule_key_that_is_not_text_is_refused(key: Any) -> None:
    with pytest.raises(InvalidSegment, match="must be text"):
        contacts_matching(
            workspace=workspace_for_tests(), attribute_filters=[{"key": key, "op": "exists"}]
        )


def test_plain_names_up_to_64_characters_filter_as_before(people: None) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "e@x.io", "attributes": {"Loyalty_tier2": "gold", "k" * 64: 1}}],
        blank_means_unchanged=False,
    )
    f = "attribute_filters"
    assert _emails(**{f: [{"key": "Loyalty_tier2", "op": "eq", "value": "gold"}]}) == {"e@x.io"}
    assert _emails(**{f: [{"key": "k" * 64, "op": "exists"}]}) == {"e@x.io"}
    assert _emails(**{f: [{"key": "plan", "op": "contains", "value": "OL"}]}) == {
        "a@x.io",
        "c@x.io",
    }
    assert _emails(**{f: [{"key": "age", "op": "lt", "value": 30}]}) == {"b@x.io"}


@pytest.fixture
def saved_before_the_rule(people: None) -> Segment:
    """A row written before keys were checked (create() skips validation, as old rows did): its
    `__` key once reached the ORM as a regex lookup, and "(" is not a valid regex."""
    return Segment.objects.create(
        workspace=workspace_for_tests(),
        name="old",
        attribute_filters=[{"key": "plan__regex", "op": "eq", "value": "("}],
    )


def test_a_saved_segment_with_an_invalid_key_matches_nobody_and_says_why(
    saved_before_the_rule: Segment,
) -> None:
    from contacts.segments import segment_problem

    assert segment_contacts(saved_before_the_rule).count() == 0
    assert list(segment_contacts(saved_before_the_rule)) == []
    problem = segment_problem(saved_before_the_rule)
    assert problem is not None
    assert problem.startswith("This rule is invalid:") and "plan__regex" in problem
    assert segment_problem(Segment(workspace=workspace_for_tests(), tags_any=["vip"])) is None


def test_the_model_refuses_a_key_that_is_not_a_plain_name() -> None:
    from django.core.exceptions import ValidationError

    segment = Segment(
        workspace=workspace_for_tests(),
        name="s",
        attribute_filters=[{"key": "plan__isnull", "op": "eq", "value": True}],
    )
    with pytest.raises(ValidationError, match="plan__isnull"):
        segment.full_clean()


def test_imports_refuse_attribute_names_a_segment_could_not_address() -> None:
    report = contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "ok@x.io", "attributes": {"city": "Lyon"}, "attr_plan": "gold"},
            {"email": "json@x.io", "attributes": {"city__regex": "x"}},
            {"email": "column@x.io", "attr_loyalty-tier": "gold"},
        ],
        blank_means_unchanged=False,
    )
    assert sorted(r.status for r in report.results) == ["created", "error", "error"]
    messages = [e.message for r in report.results for e in r.errors]
    assert any("city__regex" in m for m in messages)
    assert any("loyalty-tier" in m for m in messages)
    ok = Contact.objects.get(email="ok@x.io")
    assert ok.attributes == {"city": "Lyon", "plan": "gold"}
    assert not Contact.objects.filter(email__in=["json@x.io", "column@x.io"]).exists()
