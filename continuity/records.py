"""A workspace's records of processing (GDPR Art. 30(1)): purposes, data subjects and categories
of data, channels, processors and transfers, retention, security measures.

What is fixed (the purposes and categories this product processes) is written here; what depends
on the workspace comes from the apps that know it: each app's ``retention.py`` registers a
contributor naming the channels and processors the workspace has configured (its own provider
accounts, the install's, its social accounts, its contacts' push services), so this module imports
none of them. The retention periods are the workspace's own (continuity/retention.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from continuity.models import Workspace
from continuity.retention import retention_kinds, retention_periods
from continuity.spreadsheet import spreadsheet_row_neutralise

Text = str | Promise


@dataclass(frozen=True)
class Processor:
    """A processor (or independent recipient) the workspace's data goes to."""

    name: str
    service: Text
    channel: str
    data: Text
    account: Text  # whose account: the workspace's own, or the install's
    transfer: Text


@dataclass
class Contribution:
    channels: list[str] = field(default_factory=list)
    processors: list[Processor] = field(default_factory=list)


Contributor = Callable[[Workspace], Contribution]
_CONTRIBUTORS: list[Contributor] = []


def records_contributor_register(contributor: Contributor) -> None:
    """Called by an app's retention module at import."""
    if contributor not in _CONTRIBUTORS:
        _CONTRIBUTORS.append(contributor)


WORKSPACE_ACCOUNT = _("the workspace's own account")
INSTALL_ACCOUNT = _("the install's account")
US_TRANSFER = _(
    "United States: check that the provider's data processing agreement covers it (EU-US Data "
    "Privacy Framework certification or standard contractual clauses)."
)

PURPOSES: list[dict[str, Text]] = [
    {
        "purpose": _("Marketing messages on owned channels (email, SMS, web push, WhatsApp)"),
        "lawful_basis": _(
            "Consent (GDPR Art. 6(1)(a)); or legitimate interest (Art. 6(1)(f)) for email and "
            "SMS to existing customers (soft opt-in, ePrivacy Directive Art. 13(2)), with an "
            "opt-out in every message. Recorded per contact and channel."
        ),
        "data_subjects": _("Customers and prospects of the workspace"),
    },
    {
        "purpose": _("Service notices"),
        "lawful_basis": _("As recorded per contact and channel (consent unless stated)."),
        "data_subjects": _("Customers of the workspace"),
    },
    {
        "purpose": _("Keeping proof of consent and honouring withdrawals and erasures"),
        "lawful_basis": _("Legal obligation (GDPR Art. 6(1)(c), Art. 7(1), Art. 17)"),
        "data_subjects": _("Contacts, including erased ones (as keyed hashes only)"),
    },
    {
        "purpose": _("Publishing the workspace's posts on social networks"),
        "lawful_basis": _("Legitimate interest; no contact data is posted"),
        "data_subjects": _("None (the workspace's own accounts)"),
    },
    {
        "purpose": _("Security and accountability: sign-in, roles, audit trail"),
        "lawful_basis": _("Legal obligation and legitimate interest (GDPR Art. 5(2), Art. 32)"),
        "data_subjects": _("The workspace's staff"),
    },
]

DATA_CATEGORIES: list[Text] = [
    _("Identifiers: email address, phone number, external id"),
    _("Name, language, time zone and the workspace's custom attributes"),
    _("Consent state per channel and purpose, with evidence (IP address, browser, time)"),
    _("Web push subscriptions (browser endpoint and keys)"),
    _("Messages sent, their delivery status and the providers' reports"),
    _("Tags and segment membership"),
    _("Staff: user name, role, actions in the audit trail"),
]

SECURITY_MEASURES: list[Text] = [
    _("Access by role, per workspace; every export, erasure and role change audited"),
    _("Provider secrets encrypted at rest under rotating keys"),
    _("Erased contacts keep only keyed hashes of their identifiers"),
    _("Signed, expiring links for unsubscribe and preference pages"),
    _("Every record kind expires after its retention period"),
]


def records_of_processing(*, workspace: Workspace) -> dict[str, Any]:
    """The record as one JSON-ready document, in the active language."""
    # The apps' contributors register when their retention modules load.
    retention_kinds()
    channels: set[str] = set()
    processors: list[Processor] = []
    for contributor in _CONTRIBUTORS:
        found = contributor(workspace)
        channels.update(found.channels)
        processors.extend(found.processors)
    processors.sort(key=lambda p: (p.channel, p.name))
    return {
        "controller": {"workspace": workspace.name, "slug": workspace.slug},
        "generated_at": timezone.now().isoformat(),
        "purposes": [{k: force_str(v) for k, v in row.items()} for row in PURPOSES],
        "data_categories": [force_str(c) for c in DATA_CATEGORIES],
        "channels": sorted(channels),
        "processors": [{k: force_str(v) for k, v in asdict(p).items()} for p in processors],
        "transfers": sorted(
            {f"{p.name}: {force_str(p.transfer)}" for p in processors if force_str(p.transfer)}
        ),
        "retention": [
            {
                "kind": period.kind.key,
                "label": force_str(period.kind.label),
                "days": period.days,
                "minimum_days": period.kind.minimum_days,
                "workspace_own": period.own,
                "personal_data": period.kind.personal_data,
            }
            for period in retention_periods(workspace=workspace)
        ],
        "security_measures": [force_str(m) for m in SECURITY_MEASURES],
    }


def records_csv(record: dict[str, Any]) -> str:
    """The same record flattened to (section, item, detail) rows, safe to open in a
    spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "detail"])
    rows: list[list[str]] = [
        ["controller", record["controller"]["workspace"], record["controller"]["slug"]]
    ]
    rows += [["purpose", p["purpose"], p["lawful_basis"]] for p in record["purposes"]]
    rows += [["data_category", c, ""] for c in record["data_categories"]]
    rows += [["channel", c, ""] for c in record["channels"]]
    rows += [
        ["processor", p["name"], f"{p['service']} ({p['channel']}; {p['account']}): {p['data']}"]
        for p in record["processors"]
    ]
    rows += [["transfer", t, ""] for t in record["transfers"]]
    rows += [
        ["retention", r["label"], f"{r['days']} days (minimum {r['minimum_days']})"]
        for r in record["retention"]
    ]
    rows += [["security_measure", m, ""] for m in record["security_measures"]]
    for row in rows:
        writer.writerow(spreadsheet_row_neutralise(row=row))
    return out.getvalue()


def records_json(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, indent=2)
