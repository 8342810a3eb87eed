"""Admin for marketers: contacts with search, tag and consent filters, read-only consent history,
bulk actions (through contacts.consent), import / export, and a segment editor with a live count.

Every page acts in the session's workspace (continuity.admin_access): lists, choices, imports and
exports see only its rows, and each right comes from the member's role there. Custom views check
their permission with admin_view_require; imports, exports, erasures and staff consent changes
are audited (a refused export too).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.admin import ImportExportModelAdmin
from import_export.formats import base_formats

from contacts.admin_paginator import EstimatedCountPaginator
from contacts.attribute_keys import attribute_key_problem
from contacts.consent import (
    ConsentChange,
    Evidence,
    consent_grant,
    consents_apply_bulk,
    sendable_refresh,
)
from contacts.errors import ContactErased, ImportUploadGone, InvalidSegment, LawfulBasisRefused
from contacts.export_formats import SafeCSV, SafeXLSX
from contacts.import_runs import import_rows_refuse, import_run_finish, import_run_start
from contacts.import_uploads import SizeLimitedImportForm, upload_discard, upload_owner
from contacts.language_names import language_choices, language_name
from contacts.models import (
    Channel,
    Consent,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    ContactTag,
    ImportRun,
    ImportVia,
    LawfulBasis,
    Purpose,
    PushSubscription,
    Segment,
    Suppression,
    Tag,
)
from contacts.normalize import FieldError, email_normalise, locale_normalise, phone_normalise
from contacts.privacy import AUDIT_EXPORT_FILE, AUDIT_IMPORT_FILE, contact_erase
from contacts.resources import ContactResource
from contacts.segment_builder import RuleRowsField, TagNamesField, definition_from_post
from contacts.segments import (
    contacts_matching,
    segment_audience,
    segment_problem,
)
from contacts.selectors import contacts_consented
from contacts.upsert import CONTACT_FIELDS, contact_tags_add, customer_since_parse
from continuity.admin_access import (
    ReadOnlyAdminMixin,
    WorkspaceScopedAdmin,
    WorkspaceScopedInline,
    admin_view_require,
    request_access,
    request_workspace,
)
from continuity.audit import audit_denied, audit_record
from continuity.models import Workspace
from continuity.tenancy import MissingPermission

EXPORT_CONTACT = "contacts.export_contact"
IMPORT_CONTACT = "contacts.import_contact"
RECORD_CONSENT = "contacts.record_consent"
ERASE_CONTACT = "contacts.erase_contact"
VIEW_SEGMENT = "contacts.view_segment"


class WorkspaceUniqueForm(forms.ModelForm):
    """A form whose model is unique per workspace (names, addresses): the admin keeps the
    workspace out of the form, which would make Django skip those constraints and let the
    database refuse the save with a 500. The admin sets ``workspace`` on the class; the
    instance gets it before validation, so the constraints are checked and named."""

    workspace: Workspace | None = None

    def _post_clean(self) -> None:
        if getattr(self.instance, "workspace_id", None) is None and self.workspace is not None:
            self.instance.workspace = self.workspace
        super()._post_clean()  # type: ignore[misc]

    def _get_validation_exclusions(self) -> Any:
        exclude = super()._get_validation_exclusions()  # type: ignore[misc]
        if getattr(self.instance, "workspace_id", None) is not None:
            exclude.discard("workspace")
        return exclude


class ScopedAdmin(WorkspaceScopedAdmin):
    """WorkspaceScopedAdmin whose forms check per-workspace uniqueness (WorkspaceUniqueForm)."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if issubclass(form, WorkspaceUniqueForm):
            form = type(form.__name__, (form,), {"workspace": request_workspace(request)})
        return form


class TagFilter(admin.SimpleListFilter):
    title = gettext_lazy("tag")
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        workspace = request_workspace(request)
        if workspace is None:
            return []
        tags = Tag.objects.for_workspace(workspace).order_by("name")
        return [(name, name) for name in tags.values_list("name", flat=True)[:200]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        workspace = request_workspace(request)
        if not self.value() or workspace is None:
            return queryset
        return queryset.filter(
            Exists(
                ContactTag.objects.filter(
                    contact=OuterRef("pk"), tag__workspace=workspace, tag__name=self.value()
                )
            )
        )


def consent_filter(channel: Channel) -> type[admin.SimpleListFilter]:
    class ConsentFilter(admin.SimpleListFilter):
        # Built when the filter is drawn, in that request's language, not at import.
        title = lazy(lambda: _("%(channel)s marketing consent") % {"channel": channel.label}, str)()
        parameter_name = f"consent_{channel.value}"

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [
                ("allowed", _("may be sent to (granted, not suppressed)")),
                *[(s.value, str(s.label)) for s in ConsentState],
                ("none", _("never asked")),
            ]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
            value = self.value()
            if not value:
                return queryset
            if value == "allowed":
                return contacts_consented(channel=channel, purpose=Purpose.MARKETING, base=queryset)
            has = Consent.objects.filter(
                contact=OuterRef("pk"), channel=channel, purpose=Purpose.MARKETING
            )
            if value == "none":
                return queryset.filter(~Exists(has))
            return queryset.filter(Exists(has.filter(state=value)))

    ConsentFilter.__name__ = f"Consent{channel.value.title()}Filter"
    return ConsentFilter


class ReadOnlyInline(WorkspaceScopedInline):
    """Shown to roles that may view the model (consent evidence: privacy officers, owners);
    written only by contacts.consent."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConsentInline(ReadOnlyInline):
    model = Consent
    fields = readonly_fields = ("channel", "purpose", "state", "lawful_basis", "updated_at")


class ConsentEventInline(ReadOnlyInline):
    model = ConsentEvent
    fields = readonly_fields = (
        "occurred_at",
        "channel",
        "purpose",
        "action",
        "source",
        "source_detail",
        "ip",
        "user_agent",
        "consent_text_version",
        "recorded_by",
        "note",
        "lawful_basis",
    )
    ordering = ["-occurred_at", "-id"]
    verbose_name_plural = gettext_lazy("consent history (evidence)")


class SuppressionInline(ReadOnlyInline):
    model = Suppression
    fields = readonly_fields = ("channel", "reason", "detail", "active", "created_at", "lifted_at")


class PushInline(ReadOnlyInline):
    model = PushSubscription
    fields = readonly_fields = ("endpoint", "user_agent", "active", "failure_count", "created_at")


class ContactActionForm(ActionForm):
    tag = forms.CharField(required=False, label=gettext_lazy("tag"), max_length=100)
    channel = forms.ChoiceField(
        required=False,
        label=gettext_lazy("channel"),
        choices=[("", gettext_lazy("channel")), *Channel.choices],
    )


class ContactForm(WorkspaceUniqueForm):
    """Identifiers are normalised here exactly as imports and the API do, so that matching and
    uniqueness hold for contacts typed in by hand."""

    # Plain text fields: the model fields' own form fields would refuse before normalising.
    email = forms.CharField(required=False, max_length=254)
    phone = forms.CharField(
        required=False, max_length=40, help_text=gettext_lazy("+<country><number>")
    )

    class Meta:
        model = Contact
        # What an import may set is what the form edits, plus the customer relationship the
        # soft opt-in rests on (set by hand or with a grant through the API).
        fields = [*CONTACT_FIELDS, "customer_since"]
        help_texts = {
            "customer_since": gettext_lazy(
                "When this person bought from you. Needed to email or text them on the basis of "
                "legitimate interest (soft opt-in) instead of consent; clearing it stops those "
                "messages until it is set again."
            )
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Languages by name, in the reader's language; a regional tag an import stored stays a
        # choice of its own, so saving the form unchanged keeps it.
        current = self.instance.locale if self.instance is not None else ""
        self.fields["locale"] = forms.ChoiceField(
            label=gettext_lazy("Language"),
            required=False,
            choices=[("", _("(the workspace's default)")), *language_choices(current=current)],
            help_text=gettext_lazy("The language of the pages and mails this contact receives."),
        )

    def clean_locale(self) -> str:
        return str(self._normalised("locale", locale_normalise))

    def _normalised(self, name: str, normalise: Any) -> Any:
        raw = self.cleaned_data.get(name) or ""
        try:
            return normalise(str(raw))
        except FieldError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_email(self) -> str | None:
        return self._normalised("email", email_normalise)

    def clean_phone(self) -> str | None:
        return self._normalised("phone", phone_normalise)

    def clean_external_id(self) -> str | None:
        return (self.cleaned_data.get("external_id") or "").strip() or None

    def clean_customer_since(self) -> Any:
        # The rule of imports and the API: no relationship that begins later.
        return (
            self._normalised("customer_since", customer_since_parse)
            if self.cleaned_data.get("customer_since")
            else None
        )

    def clean_attributes(self) -> Any:
        # The names imports and the API accept (contacts.attribute_keys), and no others.
        attributes = self.cleaned_data.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise forms.ValidationError(_("Attributes must be an object of name: value."))
        problems = [p for key in attributes if (p := attribute_key_problem(key)) is not None]
        if problems:
            raise forms.ValidationError(problems)
        return attributes

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        workspace_id = self.instance.workspace_id or (self.workspace.pk if self.workspace else None)
        others = Contact.objects.for_workspace(workspace_id or 0).exclude(pk=self.instance.pk)
        for name in ("external_id", "email", "phone"):
            value = cleaned.get(name)
            if value and others.filter(**{name: value}).exists():
                self.add_error(name, _("Another contact of this workspace already has it."))
        return cleaned


@admin.register(Contact)
class ContactAdmin(ScopedAdmin, ImportExportModelAdmin):
    form = ContactForm
    resource_classes = [ContactResource]
    import_formats = [base_formats.CSV, base_formats.XLSX]
    export_formats = [SafeCSV, SafeXLSX]
    list_display = [
        "__str__",
        "email",
        "phone",
        "language",
        "external_id",
        "tag_list",
        "updated_at",
    ]
    search_fields = ["first_name", "last_name", "email", "phone", "external_id"]
    list_filter = [TagFilter, *[consent_filter(c) for c in Channel], "erased_at"]
    readonly_fields = ["created_at", "updated_at", "erased_at"]
    inlines = [ConsentInline, SuppressionInline, PushInline, ConsentEventInline]
    action_form = ContactActionForm
    actions = ["add_tag", "revoke_channel", "grant_soft_opt_in", "erase_contacts"]
    # No COUNT(*) over the whole workspace per page view (contacts.admin_paginator).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # The admin draws each row through its generic (slow) cell rendering: at 100 rows that alone
    # was most of the page's time; 50 keep it well under the 300 ms target.
    list_per_page = 50

    import_template_name = "admin/contacts/contact/import.html"
    import_form_class = SizeLimitedImportForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        return super().get_queryset(request).prefetch_related("tags")

    def save_model(self, request: HttpRequest, obj: Contact, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "customer_since" in form.changed_data:
            # A soft opt-in (legitimate interest) sends only while the contact is a customer.
            sendable_refresh(contact_ids=[obj.pk])

    # --- rights --------------------------------------------------------------------------------

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A contact leaves by erasure (the "erase" action), never by a cascade delete: deliveries
        # and consent evidence must keep pointing at the tombstone.
        return False

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request_workspace(request) is not None and self.access(request).has(IMPORT_CONTACT)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request_workspace(request) is not None and self.access(request).has(EXPORT_CONTACT)

    def has_record_consent_permission(self, request: HttpRequest) -> bool:
        return self.access(request).has(RECORD_CONSENT)

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return self.access(request).has(ERASE_CONTACT)

    def _require_export(self, request: HttpRequest) -> None:
        try:
            admin_view_require(request, EXPORT_CONTACT)
        except MissingPermission as exc:
            audit_denied(access=request_access(request), action=AUDIT_EXPORT_FILE, perm=exc.perm)
            raise

    # --- import / export: the session's workspace only ----------------------------------------

    def get_resource_kwargs(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # The resource matches, writes and exports inside this workspace, and nowhere else.
        kwargs = super().get_resource_kwargs(request, *args, **kwargs)
        return {**kwargs, "workspace": request_workspace(request)}

    def export_action(self, request: HttpRequest) -> Any:
        self._require_export(request)
        return super().export_action(request)

    def get_export_data(
        self, file_format: Any, request: HttpRequest, queryset: QuerySet[Contact], **kwargs: Any
    ) -> Any:
        """The file, and its audit row: who exported how many contacts of this workspace."""
        self._require_export(request)
        with transaction.atomic():
            data = super().get_export_data(file_format, request, queryset, **kwargs)
            audit_record(
                access=request_access(request),
                action=AUDIT_EXPORT_FILE,
                detail={
                    "contacts": queryset.filter(erased_at__isnull=True).count(),
                    "format": file_format.get_title(),
                },
            )
        return data

    def _upload_owner(self, request: HttpRequest) -> Any:
        # The import's upload belongs to this workspace and member (contacts.import_uploads).
        workspace = request_workspace(request)
        return upload_owner(
            workspace_id=workspace.pk if workspace else 0, user_id=int(request.user.pk or 0)
        )

    def process_import(self, request: HttpRequest, **kwargs: Any) -> Any:
        admin_view_require(request, IMPORT_CONTACT)
        try:
            with self._upload_owner(request):
                return super().process_import(request, **kwargs)
        except ImportUploadGone as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return redirect("admin:contacts_contact_import")

    def process_dataset(self, dataset: Any, form: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """The committing import (the preview is a dry run): its rows, its record with the
        refused rows (contacts.import_runs) and its audit row land together."""
        file_name = kwargs.get("file_name") or form.cleaned_data.get("original_file_name") or ""
        with transaction.atomic():
            result = super().process_dataset(dataset, form, request, **kwargs)
            # import-export rolls the rows back on errors (and, when asked, on invalid rows).
            rolled_back = result.has_errors() or (
                kwargs.get("rollback_on_validation_errors") and result.has_validation_errors()
            )
            if not rolled_back:
                run = self._import_record(request, dataset, result, str(file_name))
                audit_record(
                    access=request_access(request),
                    action=AUDIT_IMPORT_FILE,
                    detail={"file": str(file_name)[:200], "run": run.pk, **dict(result.totals)},
                )
        return result

    def _import_record(
        self, request: HttpRequest, dataset: Any, result: Any, file_name: str
    ) -> ImportRun:
        run = import_run_start(
            workspace=self.access(request).workspace_required,
            via=ImportVia.ADMIN,
            file_name=file_name,
            columns=[str(h) for h in (dataset.headers or [])],
            actor=self.access(request).actor_label,
        )
        # import-export numbers data rows from 1; the file's line is one more (the header).
        refused = [
            (
                invalid.number + 1,
                next(iter(invalid.error_dict), ""),
                " ".join(str(m) for texts in invalid.error_dict.values() for m in texts),
                list(dataset[invalid.number - 1]),
            )
            for invalid in result.invalid_rows
        ]
        import_rows_refuse(run=run, refused=refused)
        totals = result.totals
        import_run_finish(
            run=run,
            totals={
                "rows": result.total_rows,
                "created": totals.get("new", 0),
                "updated": totals.get("update", 0),
                "unchanged": totals.get("skip", 0),
                "errors": len(refused),
            },
        )
        return run

    def import_action(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """import-export offers no confirm step when some rows are invalid; here the preview
        lists the refused rows and still lets the valid ones be imported (the confirm step
        commits valid rows and skips invalid ones). A preview that offers no confirmation
        drops its upload at once: nobody will confirm it."""
        admin_view_require(request, IMPORT_CONTACT)
        with self._upload_owner(request):
            response = super().import_action(request, *args, **kwargs)
            context: dict[str, Any] = getattr(response, "context_data", None) or {}
            result = context.get("result")
            form = context.get("form")
            upload = (
                getattr(form.cleaned_data.get("import_file"), "tmp_storage_name", None)
                if form is not None and form.is_bound and hasattr(form, "cleaned_data")
                else None
            )
            if (
                result is not None
                and upload
                and not result.has_errors()
                and result.has_validation_errors()
                and not context.get("confirm_form")
                and any(row.import_type in ("new", "update") for row in result.rows)
            ):
                context["confirm_form"] = self.create_confirm_form(request, import_form=form)
            if upload and not context.get("confirm_form"):
                upload_discard(name=upload)
        return response

    @admin.display(description=gettext_lazy("language"), ordering="locale")
    def language(self, contact: Contact) -> str:
        return language_name(contact.locale)

    @admin.display(description=gettext_lazy("tags"))
    def tag_list(self, contact: Contact) -> str:
        return ", ".join(sorted(t.name for t in contact.tags.all()))

    @admin.action(description=gettext_lazy("Add the tag typed above"), permissions=["change"])
    def add_tag(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        name = (request.POST.get("tag") or "").strip()[:100]
        if not name:
            self.message_user(request, _("Type a tag name first."), messages.ERROR)
            return
        ids = list(queryset.values_list("pk", flat=True))
        contact_tags_add(
            workspace=self.access(request).workspace_required, pairs=[(pk, [name]) for pk in ids]
        )
        self.message_user(
            request,
            _("Tag %(name)r added to %(count)s contacts.") % {"name": name, "count": len(ids)},
        )

    @admin.action(
        description=gettext_lazy("Erase the selected contacts (GDPR: personal data removed)"),
        permissions=["erase"],
    )
    def erase_contacts(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        access = admin_view_require(request, ERASE_CONTACT)
        erased = 0
        for contact in queryset.filter(erased_at__isnull=True):
            try:
                contact_erase(contact=contact, access=access)
            except ContactErased:
                continue  # erased meanwhile by someone else
            erased += 1
        self.message_user(request, _("%(count)s contacts erased.") % {"count": erased})

    @admin.action(
        description=gettext_lazy("Revoke marketing consent on the channel chosen above"),
        permissions=["record_consent"],
    )
    def revoke_channel(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        channel = request.POST.get("channel") or ""
        if channel not in Channel.values:
            self.message_user(request, _("Choose a channel first."), messages.ERROR)
            return
        evidence = Evidence(
            source=ConsentSource.ADMIN,
            recorded_by=request.user.get_username(),
            note="bulk action in the admin",
        )
        access = admin_view_require(request, RECORD_CONSENT)
        with transaction.atomic():
            changed = consents_apply_bulk(
                workspace=access.workspace_required,
                changes=[
                    ConsentChange(
                        contact_id=pk,
                        channel=channel,
                        purpose=Purpose.MARKETING,
                        state=ConsentState.REVOKED,
                        evidence=evidence,
                    )
                    for pk in queryset.filter(erased_at__isnull=True).values_list("pk", flat=True)
                ],
            )
            audit_record(
                access=access,
                action="consent.revoke_bulk",
                detail={"channel": channel, "purpose": Purpose.MARKETING, "changed": changed},
            )
        self.message_user(
            request,
            _("%(channel)s marketing consent revoked for %(count)s contacts.")
            % {"channel": Channel(channel).label, "count": changed},
        )

    @admin.action(
        description=gettext_lazy(
            "Record legitimate interest (soft opt-in) for marketing on the channel chosen above"
        ),
        permissions=["record_consent"],
    )
    def grant_soft_opt_in(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        channel = request.POST.get("channel") or ""
        if channel not in Channel.values:
            self.message_user(request, _("Choose a channel first."), messages.ERROR)
            return
        access = admin_view_require(request, RECORD_CONSENT)
        contacts = list(queryset.filter(erased_at__isnull=True).order_by("pk")[:SOFT_OPT_IN_MAX])
        evidence = Evidence(
            source=ConsentSource.ADMIN,
            recorded_by=request.user.get_username(),
            note="soft opt-in recorded in the admin",
        )
        granted, refused = 0, Counter[str]()
        for contact in contacts:
            try:
                with transaction.atomic():
                    consent_grant(
                        contact=contact,
                        channel=channel,
                        purpose=Purpose.MARKETING,
                        evidence=evidence,
                        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
                    )
                    audit_record(
                        access=access,
                        action="consent.grant",
                        target=contact,
                        detail={
                            "channel": channel,
                            "purpose": Purpose.MARKETING,
                            "lawful_basis": LawfulBasis.LEGITIMATE_INTEREST,
                        },
                    )
                granted += 1
            except LawfulBasisRefused as exc:
                refused[str(exc.detail)] += 1
        self.message_user(
            request,
            _("Legitimate interest recorded for %(count)s contacts.") % {"count": granted},
        )
        for reason, count in refused.items():
            self.message_user(
                request,
                _("%(count)s contacts refused: %(reason)s") % {"count": count, "reason": reason},
                messages.WARNING,
            )


# One consent write (and its audit row) per contact: the action takes a page's selection, not a
# whole table.
SOFT_OPT_IN_MAX = 1000


class SegmentForm(WorkspaceUniqueForm):
    """Tags typed as names and rules as rows in plain words (contacts.segment_builder): the
    stored definition is built from them, never typed as JSON."""

    tags_any = TagNamesField(
        required=False,
        label=gettext_lazy("Has at least one of these tags"),
        help_text=gettext_lazy("Tag names separated by commas, e.g. vip, newsletter."),
    )
    tags_all = TagNamesField(
        required=False,
        label=gettext_lazy("Has every one of these tags"),
        help_text=gettext_lazy("Tag names separated by commas."),
    )
    tags_none = TagNamesField(
        required=False,
        label=gettext_lazy("Has none of these tags"),
        help_text=gettext_lazy("Tag names separated by commas, e.g. churned."),
    )
    attribute_filters = RuleRowsField(required=False, label=gettext_lazy("Rules"))

    class Meta:
        model = Segment
        fields = ["name", "description", "tags_any", "tags_all", "tags_none", "attribute_filters"]


@admin.register(Segment)
class SegmentAdmin(ScopedAdmin):
    form = SegmentForm
    list_display = ["name", "audience", "updated_at"]
    readonly_fields = ["rule_check", "live_count"]

    class Media:
        css = {"all": ("contacts/segment-builder.css",)}
        js = ("contacts/segment-builder.js", "contacts/segment-live-count.js")

    @admin.display(description=gettext_lazy("audience"))
    def audience(self, segment: Segment) -> int | str:
        # A row saved before the rules tightened says what is wrong instead of a count.
        return segment_problem(segment) or segment_audience(segment=segment).count()

    @admin.display(description=gettext_lazy("rule check"))
    def rule_check(self, segment: Segment) -> str:
        if segment.pk is None:
            return "-"
        return segment_problem(segment) or _("The rules are valid.")

    @admin.display(description=gettext_lazy("live count"))
    def live_count(self, segment: Segment) -> str:
        # The sentence is translated here and filled in by the static script (no inline JS).
        return format_html(
            '<span id="segment-live-count" data-url="{}" data-template="{}" data-invalid="{}"'
            ' aria-live="polite">{}</span>',
            reverse("admin:contacts_segment_count"),
            _(
                "{all} contacts match. May be sent marketing now: by email {email}, by SMS "
                "{sms}, by web push {push}, on WhatsApp {whatsapp}."
            ),
            _("These rules cannot be counted yet:"),
            "…",
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "count/",
                self.admin_site.admin_view(self.count_view),
                name="contacts_segment_count",
            ),
            *super().get_urls(),
        ]

    def count_view(self, request: HttpRequest) -> JsonResponse:
        """The editor posts its current definition; the answer is the audience size overall
        and per channel (may be sent marketing), inside the session's workspace."""
        access = admin_view_require(request, VIEW_SEGMENT)
        try:
            if request.content_type == "application/json":
                data = json.loads(request.body or b"{}")
                if not isinstance(data, dict):
                    raise InvalidSegment("expected a segment definition object")
            else:
                # The editor posts its rows as they stand: counted exactly as they would save.
                data = definition_from_post(request.POST)
            qs = contacts_matching(
                workspace=access.workspace_required,
                tags_any=data.get("tags_any"),
                tags_all=data.get("tags_all"),
                tags_none=data.get("tags_none"),
                attribute_filters=data.get("attribute_filters"),
            )
            counts = {"all": qs.count()}
            for channel in Channel.values:
                counts[channel] = contacts_consented(
                    channel=channel, purpose=Purpose.MARKETING, base=qs
                ).count()
        except forms.ValidationError as exc:
            detail = " ".join(exc.messages)
            return JsonResponse({"error": "invalid_segment", "detail": detail}, status=400)
        except (ValueError, AttributeError, InvalidSegment) as exc:
            detail = exc.detail if isinstance(exc, InvalidSegment) else str(exc)
            return JsonResponse({"error": "invalid_segment", "detail": detail}, status=400)
        return JsonResponse(counts)


class ReadOnlyAdmin(ReadOnlyAdminMixin, WorkspaceScopedAdmin):
    pass


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "contact", "channel", "purpose", "action", "source"]
    list_filter = ["channel", "purpose", "action", "source"]
    search_fields = ["contact__email", "contact__external_id", "subject_hash"]
    list_select_related = ["contact"]


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdmin):
    list_display = ["contact", "channel", "reason", "active", "created_at"]
    list_filter = ["channel", "reason", "active"]
    list_select_related = ["contact"]


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["contact", "active", "failure_count", "user_agent", "created_at"]
    list_filter = ["active"]
    list_select_related = ["contact"]


class TagForm(WorkspaceUniqueForm):
    class Meta:
        model = Tag
        fields = ["name"]


@admin.register(Tag)
class TagAdmin(ScopedAdmin):
    form = TagForm
    search_fields = ["name"]


from contacts import admin_imports  # noqa: E402, F401 - the Imports page registers itself
