"""Schemathesis over the whole OpenAPI schema, in-process (#14).

Every operation the schema documents is called through the WSGI app, as the owner of a workspace
holding realistic data (tests/api/conftest.py), with inputs generated from the schema, both valid
and deliberately invalid ones. Nothing may answer 5xx, every status and body must be the ones the
schema documents, and without a key every operation is refused with 401. The examples are bounded
and derandomised (a fixed seed), so a run is repeatable and a failure replays the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import schemathesis
from django.urls import Resolver404, resolve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from continuity.wsgi import application
from tests.api.conftest import ApiWorld
from tests.test_permission_matrix import api_routes

# Fuzzed examples per operation, on top of the schema's own examples and the coverage phase's
# boundary values. Sized for the whole module to stay well under 90 s on a busy 2-core machine.
FUZZ_EXAMPLES = 10
SEED = 14
FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def schema_document() -> dict[str, Any]:
    """The OpenAPI document /api/v1/schema/ serves, built the same way (no request needed)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    rendered: bytes = OpenApiJsonRenderer().render(generated, renderer_context={})
    document: dict[str, Any] = json.loads(rendered)
    return document


def _config(*, examples: int, with_auth: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": examples,
                "deterministic": True,
                "database": "none",
                # The key comes from the test; a generated Authorization header would only test
                # that a random string is not a key (the unauthenticated pass does that).
                "with-security-parameters": not with_auth,
            },
            "phases": {
                # Stateful runs chain operations through links the schema does not declare.
                "stateful": {"enabled": False},
                # Without a key every input meets the same refusal: the coverage phase's
                # thousands of boundary values would test nothing more than a few examples do.
                "coverage": {"enabled": with_auth},
            },
        }
    )


DOCUMENT = schema_document()
schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=_config(examples=FUZZ_EXAMPLES, with_auth=True)
)
schema.app = application  # in-process: requests go straight to the WSGI handler
anonymous_schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=_config(examples=2, with_auth=False)
)
anonymous_schema.app = application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Function-scoped fixtures are shared by the examples of one operation on purpose: the world is
# built once per operation and the examples act on it in turn (a deleted row stays deleted).
SHARED_FIXTURES = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ]
)


def _point_at_rows(case: Any, world: ApiWorld) -> None:
    """Path ids name the world's rows (and now and then a missing one): random integers would
    only ever reach "not found". Ids the generator made wrong on purpose stay as they are."""
    for name, value in list((case.path_parameters or {}).items()):
        # The coverage phase hands some ids over as text.
        number = (
            int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value
        )
        if isinstance(number, int) and not isinstance(number, bool):
            ids = world.ids_for(case.operation.path)
            case.path_parameters[name] = ids[number % len(ids)]


@schema.parametrize()
@SHARED_FIXTURES
def test_every_operation_answers_an_owner_as_documented_and_never_5xx(
    case: Any, api_world: ApiWorld
) -> None:
    if case.meta.phase.name == TestPhase.COVERAGE and case.media_type in FORM_MEDIA_TYPES:
        # The coverage phase repeats each boundary value once per body media type. Form bodies
        # reach the same fields and code as JSON ones (only the parser differs, and the
        # fuzzing phase still sends both form kinds): skipping their copies halves the
        # module's time.
        return
    _point_at_rows(case, api_world)
    case.call_and_validate(headers=api_world.headers, checks=CHECKS)


@anonymous_schema.parametrize()
@SHARED_FIXTURES
def test_without_a_key_every_operation_is_refused_with_401(
    case: Any, db: None, wsgi_keeps_connection: None
) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, content_type_conformance])
    if response.status_code == 404:
        # A path no route matches (an id generated as "null,null") never reaches a view that
        # could ask for a key.
        with pytest.raises(Resolver404):
            resolve(unquote(urlsplit(response.request.url).path))
        return
    assert response.status_code == 401, (response.status_code, response.text[:500])


@pytest.mark.parametrize(
    "path, method",
    [(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops],
)
def test_every_operation_documents_its_4xx_answers_in_the_error_shape(
    path: str, method: str
) -> None:
    responses = DOCUMENT["paths"][path][method]["responses"]
    expected = {"400", "401", "403"}
    if "{" in path:
        expected.add("404")
    assert expected <= set(responses), sorted(responses)
    for code in (c for c in responses if c.startswith("4")):
        body = responses[code]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorOut"}, (code, body)


def test_the_schema_lists_every_api_operation_the_urlconf_routes() -> None:
    """Schemathesis only calls what the schema lists: an API view left out of it (or a method
    its permission_map allows but the schema omits) would never be fuzzed."""
    routed = set()
    for route in api_routes():
        if route.name == "schema":  # the document itself, not an operation of the API
            continue
        path = "/" + re.sub(r"<[^>]+>", "{}", route.path)
        routed |= {(path, method.lower()) for method in route.view.permission_map}
    documented = {
        (re.sub(r"{[^}]+}", "{}", path), method)
        for path, ops in DOCUMENT["paths"].items()
        for method in ops
    }
    assert routed == documented


def test_the_fuzzed_document_is_the_one_the_api_serves(client: Any) -> None:
    served = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert json.loads(served.content) == DOCUMENT
