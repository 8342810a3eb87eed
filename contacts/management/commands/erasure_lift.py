"""`manage.py erasure_lift --workspace SLUG --email ADDRESS --recorded-by NAME --note TEXT`:
record new consent from a person who was erased, so they can be added to the workspace again.

New consent is staff's act (docs/privacy.md, "New consent"): the person gave fresh consent
themselves (a signed form, a sign-up they made), and the note says what it was. The lift is in
the workspace's audit trail with that evidence and without the identifier."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from contacts.consent import Evidence
from contacts.errors import ContactsError
from contacts.models import ConsentSource
from contacts.normalize import FieldError, email_normalise, phone_normalise
from contacts.privacy import erased_identifier_lift
from continuity.models import Workspace
from continuity.workspaces import command_access


class Command(BaseCommand):
    help = "Record new consent from an erased person so they may be added again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="the workspace's slug")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--email")
        who.add_argument("--phone")
        parser.add_argument("--recorded-by", required=True, help="who records the consent")
        parser.add_argument("--note", required=True, help="what the person gave, and when")
        parser.add_argument(
            "--source", choices=[ConsentSource.FORM, ConsentSource.ADMIN], default="admin"
        )
        parser.add_argument("--consent-text-version", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"no workspace {options['workspace']!r}")
        try:
            identifier = (
                email_normalise(options["email"])
                if options["email"]
                else phone_normalise(options["phone"])
            )
        except FieldError as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from None
        if not identifier:
            raise CommandError("give the person's email or phone")
        evidence = Evidence(
            source=options["source"],
            recorded_by=options["recorded_by"],
            note=options["note"],
            consent_text_version=options["consent_text_version"],
        )
        try:
            lifted = erased_identifier_lift(
                workspace_id=workspace.pk,
                identifier=str(identifier),
                evidence=evidence,
                access=command_access(workspace=workspace),
            )
        except ContactsError as exc:
            raise CommandError(str(exc.detail)) from None
        if not lifted:
            raise CommandError("no erased person of this workspace has that identifier")
        self.stdout.write("new consent recorded: the person may be added again")
