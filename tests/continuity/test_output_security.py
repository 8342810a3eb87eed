"""Output hardening (issue #14): a Content-Security-Policy on admin, public and API docs pages,
no inline script in the admin, and API docs that load nothing from outside."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from contacts import links
from tests.campaigns.factories import make_account, make_campaign, make_segment
from tests.contacts.factories import make_contact

pytestmark = pytest.mark.django_db

_SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
_RESOURCE_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


def _directives(response: object) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    parts = (part.split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


def _assert_strict(response: object) -> None:
    policy = _directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]


def _inline_scripts(page: str) -> list[str]:
    return [attrs for attrs in _SCRIPT_TAG.findall(page) if "src=" not in attrs]


def test_admin_pages_carry_the_policy_and_no_inline_script(admin_client: Client) -> None:
    campaign = make_campaign(accounts=[make_account()])
    segment = make_segment()
    make_contact()
    for url in (
        "/admin/",
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
        f"/admin/contacts/segment/{segment.pk}/change/",
        "/admin/contacts/segment/add/",
        "/admin/contacts/contact/",
        "/admin/contacts/contact/import/",
        "/admin/contacts/contact/export/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        _assert_strict(response)
        assert _inline_scripts(response.content.decode()) == [], url


def test_the_segment_editor_gets_its_live_count_from_a_static_script(
    admin_client: Client,
) -> None:
    page = admin_client.get("/admin/contacts/segment/add/").content.decode()
    assert 'src="/static/contacts/segment-live-count.js"' in page
    assert f'data-url="{reverse("admin:contacts_segment_count")}"' in page


def test_public_pages_carry_the_policy(client: Client) -> None:
    contact = make_contact()
    unsubscribe = links.token_make(
        salt=links.SALT_UNSUBSCRIBE, contact_id=contact.pk, channel="email"
    )
    preferences = links.token_make(salt=links.SALT_PREFERENCES, contact_id=contact.pk)
    for url in (
        reverse("contacts:unsubscribe", args=[unsubscribe]),
        reverse("contacts:preferences", args=[preferences]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        _assert_strict(response)
        assert _inline_scripts(response.content.decode()) == [], url


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_only_local_static_files_under_the_policy(
    admin_client: Client, url: str
) -> None:
    response = admin_client.get(url)
    assert response.status_code == 200
    _assert_strict(response)
    page = response.content.decode()
    assert _inline_scripts(page) == []
    resources = _RESOURCE_URL.findall(page)
    assert resources, "the page loads its UI from somewhere"
    for resource in resources:
        if resource.startswith(url):
            continue  # Swagger UI's init script, served by the same view (?script)
        # Django resolves the relative STATIC_URL setting to an absolute path.
        assert resource.startswith(settings.STATIC_URL), resource
    assert "cdn" not in page.lower()
    assert "googleapis" not in page


def test_the_swagger_init_script_is_javascript_under_the_policy(admin_client: Client) -> None:
    response = admin_client.get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in response.content.decode()
    assert '"validatorUrl": null' in response.content.decode()
