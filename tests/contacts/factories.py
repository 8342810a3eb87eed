"""Factories with keyword defaults for the contacts tests."""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import Any

from django.core.management import call_command

from contacts.consent import Evidence, consent_grant
from contacts.models import Channel, ConsentSource, Contact, ImportRun, Purpose
from tests.workspaces import workspace_for_tests

_seq = itertools.count(1)


def make_contact(**overrides: Any) -> Contact:
    n = next(_seq)
    values: dict[str, Any] = {
        "workspace": workspace_for_tests(),
        "external_id": f"ext-{n}",
        "email": f"person{n}@example.com",
        "first_name": f"First{n}",
        "last_name": "Person",
        "timezone": "Europe/Paris",
    }
    values.update(overrides)
    return Contact.objects.create(**values)


def evidence(**overrides: Any) -> Evidence:
    values: dict[str, Any] = {
        "source": ConsentSource.FORM,
        "ip": "203.0.113.9",
        "user_agent": "pytest",
        "consent_text_version": "v1",
        "recorded_by": "tests",
    }
    values.update(overrides)
    return Evidence(**values)


def granted_contact(
    *, channel: str = Channel.EMAIL, purpose: str = Purpose.MARKETING, **overrides: Any
) -> Contact:
    contact = make_contact(**overrides)
    consent_grant(contact=contact, channel=channel, purpose=purpose, evidence=evidence())
    return contact


def import_file(path: Path, *args: str) -> str:
    """`manage.py import_contacts` of a file into the tests workspace; its standard output."""
    out = io.StringIO()
    call_command(
        "import_contacts",
        str(path),
        "--workspace",
        workspace_for_tests().slug,
        *args,
        stdout=out,
        stderr=io.StringIO(),
    )
    return out.getvalue()


def last_import_report() -> list[dict[str, str]]:
    """The last import's error report, as `manage.py import_report` writes it."""
    run = ImportRun.objects.latest("pk")
    out = io.StringIO()
    call_command("import_report", str(run.pk), stdout=out, stderr=io.StringIO())
    return list(csv.DictReader(io.StringIO(out.getvalue())))
