from __future__ import annotations

import pytest
from django.template import engines

from delivery.merge import merge_template_compile


@pytest.mark.parametrize(
    "source",
    [
        "plain text & more",
        "Hi {{ first_name }}!",
        "Hi {{first_name}} from {{ shop }} ({{ missing }})",
        "{{ first_name|upper }} uses a filter",
        "{% if first_name %}Hi {{ first_name }}{% else %}Hi there{% endif %}",
        "{# a comment #}{{ shop }}",
        "not a placeholder: { first_name } or {{ 1st }}",
    ],
)
def test_the_fast_path_renders_exactly_what_django_renders(source: str) -> None:
    fields = {"first_name": "Zoë <&>", "shop": "Shop & Co"}
    django = engines["django"].from_string(f"{{% autoescape off %}}{source}{{% endautoescape %}}")
    assert merge_template_compile(source=source)(fields) == django.render(fields)
