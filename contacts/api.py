"""The contacts API under /api/v1/: thin views over contacts.upsert, contacts.consent,
contacts.privacy and contacts.selectors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts import serializers as s
from contacts.consent import (
    Evidence,
    consent_grant,
    consent_request_double_opt_in,
    consent_revoke,
)
from contacts.errors import ContactsError, InvalidContactData
from contacts.models import Channel, Consent, ConsentState, Contact, ContactTag, Purpose, Segment
from contacts.privacy import contact_erase, contact_export
from contacts.selectors import consent_history, contacts_consented, segment_contacts
from contacts.upsert import contact_update, contacts_upsert_rows


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


def _username(request: Request) -> str:
    return str(request.user.get_username())


class ContactListCreate(generics.GenericAPIView[Contact]):
    pagination_class = ContactCursor
    serializer_class = s.ContactOut

    def get_queryset(self) -> QuerySet[Contact]:
        params = self.request.query_params
        qs = Contact.objects.filter(erased_at__isnull=True).prefetch_related(
            "tags", Prefetch("consents", queryset=Consent.objects.order_by("channel", "purpose"))
        )
        for tag in params.getlist("tag"):
            qs = qs.filter(Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag__name=tag)))
        since = params.get("updated_since")
        if since:
            when = parse_datetime(since)
            if when is None:
                raise InvalidContactData({"updated_since": f"{since!r} is not ISO 8601"})
            qs = qs.filter(updated_at__gte=when)
        for channel in Channel.values:
            wanted = params.get(f"consent_{channel}")
            if not wanted:
                continue
            purpose = params.get("purpose", Purpose.MARKETING)
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
            OpenApiParameter("updated_since", str, description="ISO 8601"),
            *[
                OpenApiParameter(
                    f"consent_{c}",
                    str,
                    enum=["granted", "pending", "revoked", "allowed"],
                    description="allowed = granted and not suppressed",
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
        """Create a contact, or update the one its external_id / email / phone matches."""
        if not isinstance(request.data, dict):
            raise InvalidContactData("expected one contact object")
        report = contacts_upsert_rows(raws=[request.data], blank_means_unchanged=False)
        result = report.results[0]
        if result.status == "error" or result.id is None:
            raise InvalidContactData({e.field: e.message for e in result.errors})
        contact = Contact.objects.get(pk=result.id)
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(s.ContactOut(contact).data, status=code)


class ContactDetail(APIView):
    def _contact(self, pk: int) -> Contact:
        return get_object_or_404(Contact.objects.prefetch_related("tags", "consents"), pk=pk)

    @extend_schema(responses=s.ContactOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ContactOut(self._contact(pk)).data)

    @extend_schema(request=s.ContactIn, responses=s.ContactOut)
    def patch(self, request: Request, pk: int) -> Response:
        contact = contact_update(contact=self._contact(pk), data=request.data, replace_tags=False)
        return Response(s.ContactOut(self._contact(contact.pk)).data)

    @extend_schema(request=s.ContactIn, responses=s.ContactOut)
    def put(self, request: Request, pk: int) -> Response:
        contact = contact_update(contact=self._contact(pk), data=request.data, replace_tags=True)
        return Response(s.ContactOut(self._contact(contact.pk)).data)

    @extend_schema(responses={204: None}, description="GDPR erasure (see contacts.privacy).")
    def delete(self, request: Request, pk: int) -> Response:
        contact_erase(contact=self._contact(pk), recorded_by=_username(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactBulkUpsert(APIView):
    @extend_schema(request=s.BulkIn, responses=s.BulkOut)
    def post(self, request: Request) -> Response:
        """Up to CONTACTS_BULK_UPSERT_MAX contacts; each row reported, good rows written."""
        rows = request.data.get("contacts") if isinstance(request.data, dict) else None
        if not isinstance(rows, list):
            raise InvalidContactData({"contacts": "expected a list of contact objects"})
        limit = settings.CONTACTS_BULK_UPSERT_MAX
        if len(rows) > limit:
            raise TooManyRows(f"{len(rows)} contacts in one request; the limit is {limit}")
        report = contacts_upsert_rows(raws=rows, blank_means_unchanged=False)
        return Response(_report(report))


class ContactConsent(APIView):
    @extend_schema(request=s.ConsentIn, responses=s.ConsentOut)
    def post(self, request: Request, pk: int) -> Response:
        contact = get_object_or_404(Contact, pk=pk)
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
        if v["action"] == "double_opt_in":
            if v["channel"] != Channel.EMAIL:
                raise InvalidContactData({"channel": "double opt-in is for email"})
            consent = consent_request_double_opt_in(
                contact=contact, purpose=v["purpose"], evidence=evidence
            )
        else:
            change = consent_grant if v["action"] == "grant" else consent_revoke
            consent = change(
                contact=contact, channel=v["channel"], purpose=v["purpose"], evidence=evidence
            )
        return Response(s.ConsentOut(consent).data)


class ContactConsentHistory(generics.ListAPIView[Any]):
    serializer_class = s.ConsentEventOut

    def get_queryset(self) -> Any:
        return consent_history(contact=get_object_or_404(Contact, pk=self.kwargs["pk"]))


class ContactExport(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        contact = get_object_or_404(Contact, pk=pk)
        response = Response(contact_export(contact=contact))
        response["Content-Disposition"] = f'attachment; filename="contact-{pk}.json"'
        return response


class SegmentListCreate(generics.ListCreateAPIView[Segment]):
    queryset = Segment.objects.order_by("name")
    serializer_class = s.SegmentSerializer


class SegmentDetail(generics.RetrieveUpdateDestroyAPIView[Segment]):
    queryset = Segment.objects.all()
    serializer_class = s.SegmentSerializer


class SegmentCount(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("channel", str, enum=Channel.values),
            OpenApiParameter("purpose", str, enum=Purpose.values),
        ],
        responses=s.CountOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        """How many contacts the segment holds; with channel, only those who may be sent to."""
        segment = get_object_or_404(Segment, pk=pk)
        channel = request.query_params.get("channel")
        purpose = request.query_params.get("purpose", Purpose.MARKETING)
        qs = segment_contacts(segment)
        if channel:
            if channel not in Channel.values or purpose not in Purpose.values:
                raise InvalidContactData({"channel": "unknown channel or purpose"})
            qs = contacts_consented(channel=channel, purpose=purpose, base=qs)
        return Response(
            {
                "count": qs.count(),
                "channel": channel or None,
                "purpose": purpose if channel else None,
            }
        )
