"""django-import-export resource for the admin's CSV / XLSX import and export.

Each row goes through the same parser and matching rules as the API and `import_contacts`
(contacts.upsert): external_id, then email, then phone; consent columns become consent events
with source "import" and the file name. The admin runs it row by row inside import-export's
transaction (dry-run preview rolls back); files of many thousand rows belong to the command.

The admin builds it with ``workspace=`` (the session's): an import matches and writes only in
that workspace, an export reads only its contacts. Without a workspace it imports and exports
nothing.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from import_export import fields, resources

from contacts.consent import ConsentChange, Evidence, consents_apply_bulk, sendable_refresh
from contacts.models import ConsentSource, Contact
from contacts.privacy import erased_rows_refused
from contacts.upsert import (
    CONSENT_COLUMNS,
    CUSTOMER_SINCE,
    ParsedRow,
    RowInvalid,
    contact_match,
    contact_row_parse,
    contact_tags_add,
    contact_values_apply,
    contacts_by_identifiers,
)
from continuity.models import Workspace
from continuity.spreadsheet import spreadsheet_cell_restore


def _consent_getter(channel: str, purpose: str) -> Any:
    def get(contact: Contact) -> str:
        for consent in contact.consents.all():
            if consent.channel == channel and consent.purpose == purpose:
                return consent.state
        return ""

    return get


class ContactResource(resources.ModelResource):
    phone = fields.Field(attribute="phone", column_name="phone")
    tags = fields.Field(column_name="tags")
    attributes = fields.Field(column_name="attributes")

    class Meta:
        model = Contact
        fields = (
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "customer_since",
            "tags",
            "attributes",
        )
        import_id_fields: tuple[str, ...] = ()
        skip_unchanged = False
        clean_model_instances = False

    def __init__(self, workspace: Workspace | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        for column, (channel, purpose) in CONSENT_COLUMNS.items():
            self.fields[column] = fields.Field(
                column_name=column, dehydrate_method=_consent_getter(channel, purpose)
            )
        self._parsed: ParsedRow | None = None
        self._first_row: dict[str, int] = {}
        self._evidence = Evidence(source=ConsentSource.IMPORT)

    # --- export --------------------------------------------------------------------------------

    def _scoped(self, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        if self.workspace is None:
            return queryset.none()
        return queryset.filter(workspace_id=self.workspace.pk, erased_at__isnull=True)

    def get_export_queryset(self, request: Any = None) -> QuerySet[Contact]:
        return self._scoped(Contact.objects.all()).prefetch_related("tags", "consents")

    def filter_export(self, queryset: QuerySet[Contact], **kwargs: Any) -> QuerySet[Contact]:
        return self._scoped(queryset).prefetch_related("tags", "consents")

    def dehydrate_phone(self, contact: Contact) -> str:
        return str(contact.phone) if contact.phone else ""

    def dehydrate_tags(self, contact: Contact) -> str:
        return ";".join(sorted(t.name for t in contact.tags.all()))

    def dehydrate_customer_since(self, contact: Contact) -> str:
        # ISO, whatever the admin's date format: the file must import back as it was.
        return contact.customer_since.isoformat() if contact.customer_since else ""

    def dehydrate_attributes(self, contact: Contact) -> str:
        return json.dumps(contact.attributes or {}, ensure_ascii=False, sort_keys=True)

    # --- import --------------------------------------------------------------------------------

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        if self.workspace is None:
            raise ValidationError(_("choose a workspace first: an import writes into one"))
        user = kwargs.get("user")
        self._evidence = Evidence(
            source=ConsentSource.IMPORT,
            source_detail=str(kwargs.get("file_name") or "admin upload"),
            recorded_by=str(user.get_username()) if user is not None else "",
        )
        self._first_row = {}
        headers = {str(h).strip().lower() for h in (dataset.headers or [])}
        if not headers & {"external_id", "email", "phone"}:
            raise ValidationError(
                "missing header: the first line must name at least one of the columns "
                "external_id, email, phone"
            )

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        number = int(kwargs.get("row_number") or 0)
        # Exports put an apostrophe before cells a spreadsheet would run; take it off again.
        raw = {
            str(k).strip().lower(): spreadsheet_cell_restore(value=v)
            for k, v in dict(row).items()
            if k is not None
        }
        try:
            parsed = contact_row_parse(
                raw, row=number, blank_means_unchanged=True, default_evidence=self._evidence
            )
        except RowInvalid as exc:
            raise ValidationError({e.field: e.message for e in exc.errors}) from None
        refused = erased_rows_refused(
            workspace_id=self._workspace_required.pk, rows=[parsed.values]
        )
        if refused:
            name, reason = refused[0]
            raise ValidationError({name: reason})
        for key in parsed.identifier_keys():
            if key in self._first_row:
                name, value = key.split(":", 1)
                raise ValidationError(
                    {name: f"duplicate {name} {value!r}: already in row {self._first_row[key]}"}
                )
        for key in parsed.identifier_keys():
            self._first_row[key] = number
        self._parsed = parsed

    def get_instance(self, instance_loader: Any, row: Any) -> Contact | None:
        if self._parsed is None:  # before_import_row always runs first
            return None
        try:
            found = contacts_by_identifiers(
                workspace=self._workspace_required, rows=[self._parsed], as_models=True
            )
            match = contact_match(parsed=self._parsed, found=found)
        except RowInvalid as exc:
            raise ValidationError({e.field: e.message for e in exc.errors}) from None
        return match if isinstance(match, Contact) else None

    @property
    def _workspace_required(self) -> Workspace:
        if self.workspace is None:
            raise ValidationError(_("choose a workspace first: an import writes into one"))
        return self.workspace

    def init_instance(self, row: Any = None) -> Contact:
        return Contact(workspace=self._workspace_required)

    def import_instance(self, instance: Contact, row: Any, **kwargs: Any) -> None:
        if self._parsed is not None:
            contact_values_apply(parsed=self._parsed, target=instance)

    def save_m2m(self, instance: Contact, row: Any, **kwargs: Any) -> None:
        parsed = self._parsed
        if parsed is None or instance.pk is None:
            return
        if parsed.tags:
            contact_tags_add(workspace=instance.workspace_id, pairs=[(instance.pk, parsed.tags)])
        consents_apply_bulk(
            workspace=instance.workspace_id,
            changes=[
                ConsentChange(contact_id=instance.pk, channel=ch, purpose=pu, state=st, evidence=ev)
                for ch, pu, st, ev in parsed.consents
            ],
        )
        if CUSTOMER_SINCE in parsed.values:
            # A soft opt-in (legitimate interest) sends only while the contact is a customer.
            sendable_refresh(contact_ids=[instance.pk])
