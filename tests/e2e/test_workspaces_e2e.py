"""The issue's acceptance check, end to end: two workspaces and a user of each role in each, all
made with the operator commands; API keys from `api_token_create`; every cross-workspace read or
write refused with no state change; one outage (declared by an operator) rerouted by real workers
in both workspaces, each with its own consent and its own email account; each workspace's report
shows only its own campaigns."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from campaigns.models import Campaign, Reroute
from contacts.consent import consent_grant
from contacts.models import Contact
from continuity.models import AuditEvent, Role, Workspace
from continuity.tenancy import access_for
from delivery.credentials import CredentialsChange, workspace_credentials_update
from delivery.models import Delivery
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.campaigns.reroute_factories import make_campaign
from tests.contacts.factories import evidence, make_contact
from tests.harness import ProcessHandle, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]
INSTALL_KEY = "install-sendgrid-key-e2e"
ROMA_KEY = "SG.roma-own-sendgrid-key-000000000-roma"
ROLES = [Role.OWNER, Role.MARKETER, Role.PRIVACY, Role.VIEWER]
SHARED_EMAIL = "ada@example.com"


@pytest.fixture
def sendgrid() -> Iterator[SendGridFake]:
    with SendGridFake(api_key=INSTALL_KEY, extra_api_keys=(ROMA_KEY,)) as fake:
        yield fake


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def _api(key: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {key}"})


def _state() -> dict[str, Any]:
    return {
        "contacts": sorted(Contact.objects.values_list("pk", "workspace_id", "email", "erased_at")),
        "campaigns": sorted(Campaign.objects.values_list("pk", "status", "name")),
        "deliveries": Delivery.objects.count(),
    }


def _people(workspace: Workspace, n: int, *, shared_consents: bool) -> list[Contact]:
    people = [make_contact(workspace=workspace, phone=None) for _ in range(n)]
    for person in people:
        consent_grant(contact=person, channel="email", purpose="marketing", evidence=evidence())
    shared = make_contact(workspace=workspace, email=SHARED_EMAIL, phone=None)
    if shared_consents:
        consent_grant(contact=shared, channel="email", purpose="marketing", evidence=evidence())
    return [*people, shared]


def _settled() -> bool:
    busy = [S.PLANNED, S.QUEUED, S.SENDING]
    return (
        Reroute.objects.count() == 2
        and not Reroute.objects.filter(status="planning").exists()
        and not Delivery.objects.filter(status__in=busy).exists()
    )


def test_two_workspaces_from_the_commands_stay_apart_and_one_outage_reroutes_both(
    sendgrid: SendGridFake,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    # --- the install, as an operator would set it up -------------------------------------
    _command("workspace_create", "roma", "Trattoria Roma")
    _command("workspace_create", "milano", "Boutique Milano")
    keys: dict[tuple[str, str], str] = {}
    for slug in ("roma", "milano"):
        for role in ROLES:
            _command("workspace_member_add", slug, f"{slug}-{role}", "--role", role)
            keys[slug, role] = _command("api_token_create", f"{slug}-{role}", "--workspace", slug)
    _command("operator_add", "ops")
    operator_key = _command("api_token_create", "ops")
    roma, milano = Workspace.objects.get(slug="roma"), Workspace.objects.get(slug="milano")
    assert all("." in key and "\n" not in key for key in keys.values())

    # Roma brings its own SendGrid account; Milano sends through the install's.
    roma_owner = roma.memberships.get(role=Role.OWNER).user
    workspace_credentials_update(
        access=access_for(roma_owner, roma),
        workspace=roma,
        change=CredentialsChange(
            plain={"sendgrid_from_email": "ciao@roma.example"},
            secrets={"sendgrid_api_key": ROMA_KEY},
        ),
    )
    roma_people = _people(roma, 8, shared_consents=True)
    milano_people = _people(milano, 5, shared_consents=False)
    roma_campaign = make_campaign(workspace=roma, networks=("instagram",), fallback=("email",))
    milano_campaign = make_campaign(workspace=milano, networks=("instagram",), fallback=("email",))

    # --- every role of Roma, against Milano's rows: not found, nothing changes ----------------
    foreign_contact, foreign_campaign = milano_people[0], milano_campaign
    before = _state()
    for role in ROLES:
        api = _api(keys["roma", role])
        me = api.get("/api/v1/me/").json()
        assert (me["workspace"], me["role"]) == ("roma", role)
        # Another workspace's row answers exactly as a row that never existed: 404, or the
        # 403 the role gets for that action on any row (no existence oracle either way).
        for method, path, body in (
            ("get", "/api/v1/contacts/{}/", None),
            ("patch", "/api/v1/contacts/{}/", {"first_name": "Mallory"}),
            ("delete", "/api/v1/contacts/{}/", None),
            ("get", "/api/v1/contacts/{}/export/", None),
            ("post", "/api/v1/contacts/{}/consent/", {"channel": "email", "state": "granted"}),
            ("get", "/api/v1/campaigns/{}/", None),
            ("post", "/api/v1/campaigns/{}/cancel/", None),
        ):
            target = foreign_campaign.pk if "campaigns" in path else foreign_contact.pk
            calls = [
                getattr(api, method)(path.format(pk), body, content_type="application/json")
                for pk in (target, 10**9)
            ]
            foreign, missing = (c.status_code for c in calls)
            assert foreign == missing and foreign in (403, 404), (role, method, path, foreign)
        segment_count = api.get(f"/api/v1/segments/{foreign_campaign.segment_id}/count/")
        assert segment_count.status_code == 404
        # Listing shows only Roma's contacts, whatever the role.
        listed = api.get("/api/v1/contacts/").json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert {row["id"] for row in rows} <= {c.pk for c in roma_people}
    assert _state() == before
    # Workspace members are not operators: declaring an outage is refused, naming the right.
    refused = _api(keys["roma", Role.OWNER]).post(
        "/api/v1/outages/", {"network": "instagram", "reason": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403 and "outages.add_outagewindow" in refused.json()["detail"]

    # --- one outage, declared by the operator, rerouted by real workers in both ----------------
    celery_worker_process(
        env_extra={
            "SENDGRID_API_URL": f"{sendgrid.url}/v3/",
            "SENDGRID_API_KEY": INSTALL_KEY,
            "DELIVERY_EMAIL_FAILOVER_BACKEND": "",
            "REROUTE_QUIET_HOURS_EMAIL": "",
            "REROUTE_FREQUENCY_CAP_PER_DAY": "0",
        }
    )
    channel_sender.cache_clear()
    declared = _api(operator_key).post(
        "/api/v1/outages/",
        {"network": "instagram", "reason": "Instagram API answers 503"},
        content_type="application/json",
    )
    assert declared.status_code == 201, declared.content
    window_id = declared.json()["id"]
    eventually(_settled, timeout=120)

    sent = {(p.to[0], p.api_key) for p in sendgrid.personalizations}
    roma_emails = {str(c.email) for c in roma_people}
    milano_emails = {str(c.email) for c in milano_people if c.email != SHARED_EMAIL}
    # Each workspace's consent, each workspace's account; Ada consented only with Roma.
    assert sent == {(e, ROMA_KEY) for e in roma_emails} | {(e, INSTALL_KEY) for e in milano_emails}
    assert [p.to[0] for p in sendgrid.personalizations].count(SHARED_EMAIL) == 1

    # --- each workspace sees only its own reroute and report ------------------------------
    for slug, campaign in (("roma", roma_campaign), ("milano", milano_campaign)):
        viewer = _api(keys[slug, Role.VIEWER])
        reroutes = viewer.get("/api/v1/reroutes/").json()
        assert {r["campaign"] for r in reroutes} == {campaign.pk}
        report = viewer.get(f"/api/v1/reroutes/windows/{window_id}/report/").json()
        assert [c["campaign_id"] for c in report["campaigns"]] == [campaign.pk]

    audit = AuditEvent.objects.filter(workspace=None, actor__username="ops")
    assert audit.filter(action__contains="declare").count() == 1
    assert AuditEvent.objects.filter(workspace=roma, action__startswith="membership").count() == 4
