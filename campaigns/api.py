"""/api/v1/campaigns/: CRUD, schedule, cancel, publish now and status (thin views).

Every view acts in the API key's workspace: another workspace's campaign in the URL is a 404, and
an account, segment or message of another workspace named in a payload is refused with the 400
DRF gives for an unknown id (the same answer as for an id that does not exist).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.content import MESSAGE_VARIANT_FIELDS, POST_VARIANT_FIELDS, campaign_variants_set
from campaigns.errors import (
    CampaignNotReady,
    CampaignsError,
    CampaignStateConflict,
    TestSendRefused,
)
from campaigns.lifecycle import (
    SCHEDULABLE,
    campaign_cancel,
    campaign_publish_now,
    campaign_schedule,
)
from campaigns.models import (
    FALLBACK_CHANNELS,
    Campaign,
    CampaignPostVariant,
    CampaignStatus,
    SocialAccount,
)
from campaigns.selectors import campaign_get, campaign_status_summary
from campaigns.test_send import campaign_test_send
from campaigns.validation import campaign_problems, content_language_clean
from contacts.models import Segment
from contacts.selectors import contact_get
from continuity.api_access import WorkspaceAPIView, WorkspaceViewMixin
from continuity.api_schema import refusal
from continuity.models import Workspace
from delivery.models import Message, MessageVariant

VIEW = "campaigns.view_campaign"
ADD = "campaigns.add_campaign"
CHANGE = "campaigns.change_campaign"
DELETE = "campaigns.delete_campaign"

EDITABLE_FIELDS = [
    "name", "scheduled_at", "text", "link", "image_url", "overrides", "accounts", "segment",
    "purpose", "fallback_channels", "message", "outage_policy", "hold_then_reroute_minutes",
    "max_hold_minutes", "sms_budget_segments", "send_mode", "on_failback",
]  # fmt: skip


STATE_CONFLICT = refusal(
    gettext_lazy("The campaign's state does not allow this (the detail says why).")
)


class InvalidCampaign(CampaignsError):
    code = "invalid_campaign"


def _language_field(value: Any) -> str:
    try:
        return content_language_clean(value)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from exc


def _one_per_language(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A PATCH makes nested fields optional too: the language is what a variant is, so it
    # stays required.
    if any(not item.get("language") for item in value):
        raise serializers.ValidationError(_("Each variant needs its language, e.g. it or en."))
    languages = [item["language"] for item in value]
    repeated = sorted({lang for lang in languages if languages.count(lang) > 1})
    if repeated:
        raise serializers.ValidationError(
            _("One variant per language: %(languages)s appear more than once.")
            % {"languages": ", ".join(repeated)}
        )
    return value


class MessageVariantIO(serializers.ModelSerializer):
    """The fallback message in one language (any field left out is empty)."""

    class Meta:
        model = MessageVariant
        fields = ["language", *MESSAGE_VARIANT_FIELDS]
        # Uniqueness is checked over the whole list (_one_per_language), not per row.
        validators: list[Any] = []

    def validate_language(self, value: Any) -> str:
        return _language_field(value)


class PostVariantIO(serializers.ModelSerializer):
    """The social post in one language: what accounts of that language publish."""

    class Meta:
        model = CampaignPostVariant
        fields = ["language", *POST_VARIANT_FIELDS]
        validators: list[Any] = []

    def validate_language(self, value: Any) -> str:
        return _language_field(value)


class CampaignIn(serializers.ModelSerializer):
    accounts = serializers.PrimaryKeyRelatedField(
        many=True, queryset=SocialAccount.objects.all(), required=False
    )
    fallback_channels = serializers.ListField(
        child=serializers.ChoiceField(choices=list(FALLBACK_CHANNELS)),
        required=False,
        allow_empty=True,
    )
    # Writing a list replaces that kind of variant; leaving it out keeps them.
    message_variants = MessageVariantIO(many=True, required=False)
    post_variants = PostVariantIO(many=True, required=False)

    class Meta:
        model = Campaign
        fields = [*EDITABLE_FIELDS, "message_variants", "post_variants"]

    def __init__(self, *args: Any, workspace: Workspace | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Related ids resolve inside the workspace only: another workspace's account, segment
        # or message is "does not exist", exactly like an id nobody has. Without a workspace
        # (the OpenAPI schema builds one to describe it) no id resolves at all.
        fields: Any = self.fields
        accounts = SocialAccount.objects.all()
        segments = Segment.objects.all()
        messages = Message.objects.all()
        if workspace is None:
            accounts, segments, messages = accounts.none(), segments.none(), messages.none()
        else:
            accounts = accounts.filter(workspace_id=workspace.pk)
            segments = segments.filter(workspace_id=workspace.pk)
            messages = messages.filter(workspace_id=workspace.pk)
        fields["accounts"].child_relation.queryset = accounts
        fields["segment"].queryset = segments
        fields["message"].queryset = messages

    def validate_overrides(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError('expected an object such as {"x": {"text": "..."}}')
        return value

    def validate_message_variants(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _one_per_language(value)

    def validate_post_variants(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _one_per_language(value)

    # The variants are written by their use case (campaigns/content.py), after the campaign.
    def create(self, validated_data: dict[str, Any]) -> Campaign:
        variants = self._variants(validated_data)
        campaign = super().create(validated_data)
        campaign_variants_set(campaign=campaign, **variants)
        return campaign

    def update(self, instance: Campaign, validated_data: dict[str, Any]) -> Campaign:
        variants = self._variants(validated_data)
        campaign = super().update(instance, validated_data)
        campaign_variants_set(campaign=campaign, **variants)
        return campaign

    @staticmethod
    def _variants(validated_data: dict[str, Any]) -> dict[str, Any]:
        return {
            "message_variants": validated_data.pop("message_variants", None),
            "post_variants": validated_data.pop("post_variants", None),
        }


class CampaignOut(serializers.ModelSerializer):
    problems = serializers.SerializerMethodField()
    message_variants = serializers.SerializerMethodField()
    post_variants = PostVariantIO(many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", "status", *EDITABLE_FIELDS, "message_variants", "post_variants",
                  "claimed_at", "lateness_s", "problems", "created_at", "updated_at"]  # fmt: skip

    @extend_schema_field(MessageVariantIO(many=True))
    def get_message_variants(self, obj: Campaign) -> list[dict[str, Any]]:
        if obj.message is None:
            return []
        # The list prefetches message__variants: no query per campaign.
        rows = sorted(obj.message.variants.all(), key=lambda v: v.language)
        return list(MessageVariantIO(rows, many=True).data)

    def get_problems(self, obj: Campaign) -> list[str]:
        if obj.status not in SCHEDULABLE:
            return []
        return campaign_problems(campaign=obj, check_schedule=obj.status == CampaignStatus.DRAFT)


class ScheduleIn(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(required=False)


class CampaignCursor(CursorPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = ("-id",)


def _parse(serializer: serializers.Serializer) -> None:
    if not serializer.is_valid():
        raise InvalidCampaign(serializer.errors)


class CampaignListCreate(WorkspaceViewMixin, generics.GenericAPIView[Campaign]):
    pagination_class = CampaignCursor
    serializer_class = CampaignOut
    permission_map = {"GET": VIEW, "POST": ADD}

    def get_queryset(self) -> QuerySet[Campaign]:
        qs = Campaign.objects.for_workspace(self.workspace).prefetch_related(
            "accounts", "post_variants", "message__variants"
        )
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in CampaignStatus.values:
                raise InvalidCampaign({"status": f"use one of {', '.join(CampaignStatus.values)}"})
            qs = qs.filter(status=wanted)
        return qs

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=CampaignStatus.values)],
        responses=CampaignOut(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CampaignOut(page, many=True).data)

    @extend_schema(request=CampaignIn, responses={201: CampaignOut})
    def post(self, request: Request) -> Response:
        """Create a draft; its ``problems`` say what is missing before it can be scheduled."""
        serializer = CampaignIn(data=request.data, workspace=self.workspace)
        _parse(serializer)
        campaign = serializer.save(workspace=self.workspace)
        return Response(CampaignOut(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetail(WorkspaceAPIView):
    permission_map = {"GET": VIEW, "PATCH": CHANGE, "DELETE": DELETE}

    @extend_schema(responses=CampaignOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(CampaignOut(campaign_get(workspace=self.workspace, pk=pk)).data)

    @extend_schema(request=CampaignIn, responses={200: CampaignOut, 409: STATE_CONFLICT})
    def patch(self, request: Request, pk: int) -> Response:
        """Edit a draft or a scheduled campaign (a scheduled one must stay ready)."""
        with transaction.atomic():
            campaign = campaign_get(
                workspace=self.workspace, pk=pk, queryset=Campaign.objects.select_for_update()
            )
            if campaign.status not in SCHEDULABLE:
                raise CampaignStateConflict(
                    _("A %(status)s campaign cannot be edited.")
                    % {"status": campaign.get_status_display().lower()}
                )
            serializer = CampaignIn(
                campaign, data=request.data, partial=True, workspace=self.workspace
            )
            _parse(serializer)
            campaign = serializer.save()
            if campaign.status == CampaignStatus.SCHEDULED:
                problems = campaign_problems(campaign=campaign)
                if problems:
                    # Raising rolls the edit back: a scheduled campaign never becomes unready.
                    raise CampaignNotReady(problems)
        return Response(CampaignOut(campaign).data)

    @extend_schema(responses={204: None, 409: STATE_CONFLICT})
    def delete(self, request: Request, pk: int) -> Response:
        campaign = campaign_get(workspace=self.workspace, pk=pk)
        if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.CANCELLED) or (
            campaign.posts.exists()
        ):
            raise CampaignStateConflict(
                _("Only drafts and cancelled campaigns that never published can be deleted.")
            )
        campaign.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignScheduleView(WorkspaceAPIView):
    permission_map = {"POST": CHANGE}

    @extend_schema(request=ScheduleIn, responses={200: CampaignOut, 409: STATE_CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        campaign = campaign_get(workspace=self.workspace, pk=pk)
        serializer = ScheduleIn(data=request.data)
        _parse(serializer)
        campaign = campaign_schedule(
            campaign=campaign, scheduled_at=serializer.validated_data.get("scheduled_at")
        )
        return Response(CampaignOut(campaign).data)


class CampaignCancelView(WorkspaceAPIView):
    permission_map = {"POST": CHANGE}

    @extend_schema(request=None, responses={200: CampaignOut, 409: STATE_CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        campaign = campaign_get(workspace=self.workspace, pk=pk)
        return Response(CampaignOut(campaign_cancel(campaign=campaign)).data)


class CampaignPublishNowView(WorkspaceAPIView):
    permission_map = {"POST": CHANGE}

    @extend_schema(request=None, responses={200: CampaignOut, 409: STATE_CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        campaign = campaign_get(workspace=self.workspace, pk=pk)
        return Response(CampaignOut(campaign_publish_now(campaign=campaign)).data)


class CampaignStatusView(WorkspaceAPIView):
    permission_map = {"GET": VIEW}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        """Per-network post counts, per-channel delivery counts and every post's state."""
        campaign = campaign_get(workspace=self.workspace, pk=pk)
        return Response(campaign_status_summary(campaign=campaign))


class TestSendIn(serializers.Serializer):
    # A plain string (checked by campaign_test_send): a third "channel" choice set would give
    # the OpenAPI document colliding enum names.
    channel = serializers.CharField(max_length=16, help_text=gettext_lazy("email, sms or push"))
    address = serializers.CharField(
        max_length=254,
        help_text=gettext_lazy(
            "Where the test goes: an email address, a phone number, or (push) the email of a "
            "contact with a subscribed browser."
        ),
    )
    language = serializers.CharField(
        max_length=35,
        required=False,
        default="",
        help_text=gettext_lazy(
            "Content language (empty: the contact's, else the workspace's default)."
        ),
    )
    contact = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text=gettext_lazy("A contact of the workspace whose merge fields the test uses."),
    )

    def validate_language(self, value: Any) -> str:
        return _language_field(value) if value else ""


class TestSendOut(serializers.Serializer):
    sent = serializers.BooleanField()
    detail = serializers.CharField()


class CampaignTestSendView(WorkspaceAPIView):
    permission_map = {"POST": CHANGE}

    @extend_schema(request=TestSendIn, responses={200: TestSendOut})
    def post(self, request: Request, pk: int) -> Response:
        """Send me a test: one language's fallback content on one channel to the address given,
        through the workspace's provider account, marked [TEST], never counted in reports."""
        campaign = campaign_get(workspace=self.workspace, pk=pk)
        serializer = TestSendIn(data=request.data)
        _parse(serializer)
        data = serializer.validated_data
        contact = (
            contact_get(workspace=self.workspace, pk=data["contact"])
            if data.get("contact")
            else None
        )
        result = campaign_test_send(
            campaign=campaign,
            channel=data["channel"],
            address=data["address"],
            access=self.access,
            contact=contact,
            language=data["language"],
        )
        if not result.ok:
            raise TestSendRefused(result.detail)
        return Response(TestSendOut({"sent": True, "detail": result.detail}).data)
