"""The contacts API under /api/v1/: thin views over contacts.upsert, contacts.consent,
contacts.privacy and contacts.selectors.

Every view acts in the workspace of the caller's key (continuity.api_access) and declares the
permission each method needs; rows are read through the workspace, so another workspace's
contact or segment is a 404. Exports and erasures are audited, and so are their refusals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, ProtectedError, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from contacts import serializers as s
from contacts.consent import (
    Evidence,
    consent_grant,
    consent_request_double_opt_in,
    consent_revoke,
    contact_customer_since_set,
)
from contacts.errors import ContactsError, InvalidContactData, SegmentInUse
from contacts.models import Channel, Consent, ConsentState, Contact, ContactTag, Purpose, Segment
from contacts.normalize import FieldError
from contacts.privacy import AUDIT_ERASE, AUDIT_EXPORT, contact_erase, contact_export
from contacts.segments import segment_problem
from contacts.selectors import (
    consent_history,
    contact_get,
    contacts_consented,
    contacts_of,
    segment_contacts,
    segment_get,
    segments_of,
)
from contacts.upsert import (
    RowError,
    RowResult,
    contact_update,
    contacts_upsert_rows,
    customer_since_parse,
)
from continuity.api_access import WorkspaceAPIView, WorkspaceViewMixin
from continuity.api_schema import refusal
from continuity.audit import audit_denied, audit_record

VIEW_CONTACT = "contacts.view_contact"
ADD_CONTACT = "contacts.add_contact"
CHANGE_CONTACT = "contacts.change_contact"
ERASE_CONTACT = "contacts.erase_contact"
EXPORT_CONTACT = "contacts.export_contact"
RECORD_CONSENT = "contacts.record_consent"
VIEW_CONSENT_EVENTS = "contacts.view_consentevent"
VIEW_SEGMENT = "contacts.view_segment"
ADD_SEGMENT = "contacts.add_segment"
CHANGE_SEGMENT = "contacts.change_segment"
DELETE_SEGMENT = "contacts.delete_segment"


ERASED = refusal(gettext_lazy("The contact was erased: nothing about it can change any more."))


class TooManyRows(ContactsError):
    code = "too_many_rows"
    status_code = 413


class ContactCursor(CursorPagination):
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"
    ordering = ("updated_at", "id")


def _report(report: Any) -> dict[str, Any]:
    return {
        "summary": report.summary(),
        # Plain dicts: dataclasses.asdict deep-copies, which shows at 10,000 rows.
        "results": [
            {
                "row": r.row,
                "status": r.status,
                "id": r.id,
                "errors": [
                    {"row": e.row, "field": e.field, "message": e.message} for e in r.errors
                ],
            }
            for r in report.results
        ],
    }


def _instant_parse(value: str, *, name: str) -> datetime:
    """An ISO 8601 query parameter as an aware datetime (UTC when it names no offset)."""
    try:
        when = parse_datetime(value)
        if when is not None and timezone.is_naive(when):
            when = timezone.make_aware(when, UTC)
    except (ValueError, OverflowError):
        # Well formed but impossible (2024-02-30), or out of range once made aware.
        when = None
    if when is None:
        raise InvalidContactData(
            {name: _("%(value)r is not an ISO 8601 date and time") % {"value": value[:64]}}
        )
    return when


def _choice(params: Any, name: str, choices: list[str], *, default: str) -> str:
    """A query parameter that must be one of ``choices`` (absent: ``default``)."""
    value: str = params.get(name, default)
    if value != default and value not in choices:
        raise InvalidContactData(
            {name: _("use one of %(choices)s") % {"choices": ", ".join(choices)}}
        )
    return value


def _contact_object(data: Any) -> Any:
    # A JSON array, string or number parses fine but is no contact.
    if not isinstance(data, dict):
        raise InvalidContactData(_("expected one contact object"))
    return data


def _username(request: Request) -> str:
    return str(request.user.get_username())


class AuditedRefusals:
    """For views whose refusal is itself worth a record (export, erase): a request the role may
    not make is written to the audit trail, naming the contact when it is this workspace's."""

    audited_refusals: ClassVar[dict[str, str]] = {}  # HTTP method -> audit action

    def check_permissions(self, request: Request) -> None:
        try:
            super().check_permissions(request)  # type: ignore[misc]
        except exceptions.PermissionDenied:
            action = self.audited_refusals.get(request.method or "")
            access = getattr(self, "_access", None)
            if action and access is not None and access.workspace is not None:
                kwargs: dict[str, Any] = getattr(self, "kwargs", {})
                target = (
                    Contact.objects.for_workspace(access.workspace)
                    .filter(pk=kwargs.get("pk"))
                    .first()
                )
                audit_denied(
                    access=access,
                    action=action,
                    target=target,
                    perm=self.permission_map[request.method or ""],  # type: ignore[attr-defined]
                )
            raise


class ContactListCreate(WorkspaceViewMixin, generics.GenericAPIView[Contact]):
    permission_map: ClassVar[dict[str, str]] = {"GET": VIEW_CONTACT, "POST": ADD_CONTACT}
    pagination_class = ContactCursor
    serializer_class = s.ContactOut

    def get_queryset(self) -> QuerySet[Contact]:
        params = self.request.query_params
        qs = contacts_of(workspace=self.workspace).prefetch_related(
            "tags", Prefetch("consents", queryset=Consent.objects.order_by("channel", "purpose"))
        )
        for tag in params.getlist("tag"):
            qs = qs.filter(
                Exists(
                    ContactTag.objects.filter(
                        contact=OuterRef("pk"), tag__workspace=self.workspace, tag__name=tag
                    )
                )
            )
        since = params.get("updated_since")
        if since:
            qs = qs.filter(updated_at__gte=_instant_parse(since, name="updated_since"))
        purpose = _choice(params, "purpose", Purpose.values, default=Purpose.MARKETING)
        for channel in Channel.values:
            wanted = params.get(f"consent_{channel}")
            if not wanted:
                continue
            if wanted == "allowed":
                qs = contacts_consented(channel=channel, purpose=purpose, base=qs)
            elif wanted in ConsentState.values:
                qs = qs.filter(
                    Exists(
                        Consent.objects.filter(
                            contact=OuterRef("pk"), channel=channel, purpose=purpose, state=wanted
                        )
                    )
                )
            else:
                raise InvalidContactData(
                    {f"consent_{channel}": "use granted, pending, revoked or allowed"}
                )
        return qs

    @extend_schema(
        parameters=[
            OpenApiParameter("tag", str, many=True),
            OpenApiParameter("updated_since", str, description=gettext_lazy("ISO 8601 time")),
            *[
                OpenApiParameter(
                    f"consent_{c}",
                    str,
                    enum=["granted", "pending", "revoked", "allowed"],
                    description=gettext_lazy("allowed = granted and not suppressed"),
                )
                for c in Channel.values
            ],
            OpenApiParameter("purpose", str, enum=Purpose.values),
        ],
        responses=s.ContactOut(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ContactOut(page, many=True).data)

    @extend_schema(request=s.ContactIn, responses={201: s.ContactOut, 200: s.ContactOut})
    def post(self, request: Request) -> Response:
        """Create a contact, or update the one its external_id / email / phone matches in this
        workspace."""
        report = contacts_upsert_rows(
            workspace=self.workspace,
            raws=[_contact_object(request.data)],
            blank_means_unchanged=False,
        )
        result = report.results[0]
        if result.status == "error" or result.id is None:
            raise InvalidContactData({e.field: e.message for e in result.errors})
        contact = contact_get(workspace=self.workspace, pk=result.id)
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(s.ContactOut(contact).data, status=code)


class ContactDetail(AuditedRefusals, WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {
        "GET": VIEW_CONTACT,
        "PATCH": CHANGE_CONTACT,
        "PUT": CHANGE_CONTACT,
        "DELETE": ERASE_CONTACT,
    }
    audited_refusals: ClassVar[dict[str, str]] = {"DELETE": AUDIT_ERASE}

    def _contact(self, pk: int) -> Contact:
        return contact_get(workspace=self.workspace, pk=pk)

    def _render(self, pk: int) -> Response:
        contact = (
            Contact.objects.for_workspace(self.workspace)
            .prefetch_related("tags", "consents")
            .filter(pk=pk)
            .first()
        )
        if contact is None:
            raise exceptions.NotFound()
        return Response(s.ContactOut(contact).data)

    @extend_schema(responses=s.ContactOut)
    def get(self, request: Request, pk: int) -> Response:
        return self._render(pk)

    @extend_schema(request=s.ContactIn, responses={200: s.ContactOut, 409: ERASED})
    def patch(self, request: Request, pk: int) -> Response:
        contact = contact_update(
            contact=self._contact(pk), data=_contact_object(request.data), replace_tags=False
        )
        return self._render(contact.pk)

    @extend_schema(request=s.ContactIn, responses={200: s.ContactOut, 409: ERASED})
    def put(self, request: Request, pk: int) -> Response:
        contact = contact_update(
            contact=self._contact(pk), data=_contact_object(request.data), replace_tags=True
        )
        return self._render(contact.pk)

    @extend_schema(
        responses={204: None, 409: ERASED},
        description=gettext_lazy("GDPR erasure (see contacts.privacy)."),
    )
    def delete(self, request: Request, pk: int) -> Response:
        contact_erase(contact=self._contact(pk), recorded_by=_username(request), access=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactBulkUpsert(WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {"POST": ADD_CONTACT}

    @extend_schema(
        request=s.BulkIn,
        responses={
            200: s.BulkOut,
            413: refusal(
                gettext_lazy("More contacts than CONTACTS_BULK_UPSERT_MAX in one request.")
            ),
        },
    )
    def post(self, request: Request) -> Response:
        """Up to CONTACTS_BULK_UPSERT_MAX contacts; each row reported, good rows written."""
        rows = request.data.get("contacts") if isinstance(request.data, dict) else None
        if not isinstance(rows, list):
            raise InvalidContactData({"contacts": "expected a list of contact objects"})
        limit = settings.CONTACTS_BULK_UPSERT_MAX
        if len(rows) > limit:
            raise TooManyRows(
                _("%(count)s contacts in one request; the limit is %(limit)s")
                % {"count": len(rows), "limit": limit}
            )
        # A row that is not an object (a list, a string) is reported as that row's error; the
        # others are still written, as for any other bad row.
        objects = [(n, row) for n, row in enumerate(rows, start=1) if isinstance(row, dict)]
        report = contacts_upsert_rows(
            workspace=self.workspace,
            raws=[row for _n, row in objects],
            row_numbers=[n for n, _row in objects],
            blank_means_unchanged=False,
        )
        if len(objects) < len(rows):
            report.results.extend(
                RowResult(
                    row=n,
                    status="error",
                    errors=[RowError(row=n, field="row", message=_("expected a contact object"))],
                )
                for n, row in enumerate(rows, start=1)
                if not isinstance(row, dict)
            )
            report.results.sort(key=lambda result: result.row)
        return Response(_report(report))


class ContactConsent(WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {"POST": RECORD_CONSENT}

    @extend_schema(request=s.ConsentIn, responses={200: s.ConsentOut, 409: ERASED})
    def post(self, request: Request, pk: int) -> Response:
        contact = contact_get(workspace=self.workspace, pk=pk)
        data = s.ConsentIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        evidence = Evidence(
            source=v["source"],
            occurred_at=v["occurred_at"],
            ip=v["ip"],
            user_agent=v["user_agent"],
            consent_text_version=v["consent_text_version"],
            recorded_by=_username(request),
            note=v["note"],
        )
        # A member changing a person's consent on their behalf: the change and its audit row
        # commit together.
        with transaction.atomic():
            if v["action"] == "double_opt_in":
                if v["channel"] != Channel.EMAIL:
                    raise InvalidContactData({"channel": "double opt-in is for email"})
                consent = consent_request_double_opt_in(
                    contact=contact, purpose=v["purpose"], evidence=evidence
                )
            elif v["action"] == "grant":
                if v["customer_since"] is not None:
                    # The same rule as an import or a PATCH: no relationship that starts later.
                    try:
                        since = customer_since_parse(v["customer_since"])
                    except FieldError as exc:
                        raise InvalidContactData({exc.field: exc.message}) from None
                    contact_customer_since_set(contact=contact, since=since)
                consent = consent_grant(
                    contact=contact,
                    channel=v["channel"],
                    purpose=v["purpose"],
                    evidence=evidence,
                    lawful_basis=v["lawful_basis"],
                )
            else:
                consent = consent_revoke(
                    contact=contact, channel=v["channel"], purpose=v["purpose"], evidence=evidence
                )
            audit_record(
                access=self.access,
                action=f"consent.{v['action']}",
                target=contact,
                detail={
                    "channel": v["channel"],
                    "purpose": v["purpose"],
                    "source": v["source"],
                    "lawful_basis": consent.lawful_basis,
                },
            )
        return Response(s.ConsentOut(consent).data)


class ContactConsentHistory(WorkspaceViewMixin, generics.ListAPIView[Any]):
    permission_map: ClassVar[dict[str, str]] = {"GET": VIEW_CONSENT_EVENTS}
    serializer_class = s.ConsentEventOut

    def get_queryset(self) -> Any:
        return consent_history(contact=contact_get(workspace=self.workspace, pk=self.kwargs["pk"]))


class ContactExport(AuditedRefusals, WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {"GET": EXPORT_CONTACT}
    audited_refusals: ClassVar[dict[str, str]] = {"GET": AUDIT_EXPORT}

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        contact = contact_get(workspace=self.workspace, pk=pk)
        with transaction.atomic():
            document = contact_export(contact=contact, access=self.access)
        response = Response(document)
        response["Content-Disposition"] = f'attachment; filename="contact-{pk}.json"'
        return response


class SegmentListCreate(WorkspaceViewMixin, generics.ListCreateAPIView[Segment]):
    permission_map: ClassVar[dict[str, str]] = {"GET": VIEW_SEGMENT, "POST": ADD_SEGMENT}
    serializer_class = s.SegmentSerializer

    def get_queryset(self) -> QuerySet[Segment]:
        return segments_of(workspace=self.workspace)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "workspace": self.workspace}

    def perform_create(self, serializer: BaseSerializer[Segment]) -> None:
        serializer.save(workspace=self.workspace)


@extend_schema_view(
    delete=extend_schema(
        responses={
            204: None,
            409: refusal(
                gettext_lazy("Campaigns use the segment: point them at another one first.")
            ),
        }
    )
)
class SegmentDetail(WorkspaceViewMixin, generics.RetrieveUpdateDestroyAPIView[Segment]):
    permission_map: ClassVar[dict[str, str]] = {
        "GET": VIEW_SEGMENT,
        "PUT": CHANGE_SEGMENT,
        "PATCH": CHANGE_SEGMENT,
        "DELETE": DELETE_SEGMENT,
    }
    serializer_class = s.SegmentSerializer

    def get_queryset(self) -> QuerySet[Segment]:
        return segments_of(workspace=self.workspace)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "workspace": self.workspace}

    def perform_destroy(self, instance: Segment) -> None:
        try:
            instance.delete()
        except ProtectedError:
            raise SegmentInUse(
                _("campaigns use this segment: point them at another one first")
            ) from None


class SegmentCount(WorkspaceAPIView):
    permission_map: ClassVar[dict[str, str]] = {"GET": VIEW_SEGMENT}

    @extend_schema(
        parameters=[
            OpenApiParameter("channel", str, enum=Channel.values),
            OpenApiParameter("purpose", str, enum=Purpose.values),
        ],
        responses=s.CountOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        """How many contacts the segment holds; with channel, only those who may be sent to."""
        segment = segment_get(workspace=self.workspace, pk=pk)
        params = request.query_params
        channel = _choice(params, "channel", Channel.values, default="")
        purpose = _choice(params, "purpose", Purpose.values, default=Purpose.MARKETING)
        qs = segment_contacts(segment)
        if channel:
            qs = contacts_consented(channel=channel, purpose=purpose, base=qs)
        return Response(
            {
                "count": qs.count(),
                "channel": channel or None,
                "purpose": purpose if channel else None,
                "problem": segment_problem(segment),
            }
        )
