"""API shapes. Output serializers render; input serializers only check shape, the use cases
(contacts.upsert, contacts.consent) do the real validation and say which field is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from contacts.models import (
    Channel,
    Consent,
    ConsentEvent,
    ConsentSource,
    Contact,
    LawfulBasis,
    Purpose,
    Segment,
)


class ConsentOut(serializers.ModelSerializer[Consent]):
    class Meta:
        model = Consent
        fields = ["channel", "purpose", "state", "lawful_basis", "updated_at"]


class ContactOut(serializers.ModelSerializer[Contact]):
    phone = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    consents = ConsentOut(many=True, read_only=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "tags",
            "attributes",
            "consents",
            "created_at",
            "updated_at",
            "erased_at",
            "customer_since",
        ]

    def get_phone(self, obj: Contact) -> str | None:
        return str(obj.phone) if obj.phone else None

    def get_tags(self, obj: Contact) -> list[str]:
        return sorted(t.name for t in obj.tags.all())


class ConsentIn(serializers.Serializer[Any]):
    channel = serializers.ChoiceField(choices=Channel.choices)
    purpose = serializers.ChoiceField(choices=Purpose.choices, default=Purpose.MARKETING)
    action = serializers.ChoiceField(
        choices=["grant", "revoke", "double_opt_in"],
        help_text=gettext_lazy(
            "double_opt_in (email only): state pending, a confirmation link is mailed in the "
            "contact's language"
        ),
    )
    # Not required here on purpose: contacts.consent refuses a grant without it, in the
    # project's error shape with its own code (consent_evidence_missing).
    source = serializers.CharField(  # type: ignore[assignment]  # the metaclass pops it
        required=False, allow_blank=True, default=""
    )
    occurred_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    ip = serializers.IPAddressField(required=False, allow_null=True, default=None)
    user_agent = serializers.CharField(required=False, allow_blank=True, default="")
    consent_text_version = serializers.CharField(required=False, allow_blank=True, default="")
    note = serializers.CharField(required=False, allow_blank=True, default="")
    lawful_basis = serializers.ChoiceField(
        choices=LawfulBasis.choices,
        default=LawfulBasis.CONSENT,
        help_text="for a grant: legitimate_interest is the soft opt-in (email or SMS marketing "
        "to an existing customer who has not opted out)",
    )
    customer_since = serializers.DateField(
        required=False,
        allow_null=True,
        default=None,
        help_text="when the person became a customer: recorded on the contact with the grant",
    )


class ConsentEventOut(serializers.ModelSerializer[ConsentEvent]):
    class Meta:
        model = ConsentEvent
        fields = [
            "id",
            "channel",
            "purpose",
            "action",
            "state",
            "source",
            "source_detail",
            "occurred_at",
            "recorded_at",
            "ip",
            "user_agent",
            "consent_text_version",
            "recorded_by",
            "note",
            "lawful_basis",
            "subject_hash",
        ]


class ContactIn(serializers.Serializer[Any]):
    """Documentation of a contact row; parsing is contacts.upsert.contact_row_parse."""

    external_id = serializers.CharField(required=False, allow_null=True)
    email = serializers.CharField(required=False, allow_null=True)
    phone = serializers.CharField(required=False, allow_null=True, help_text=gettext_lazy("E.164"))
    first_name = serializers.CharField(required=False)
    last_name = serializers.CharField(required=False)
    locale = serializers.CharField(
        required=False,
        help_text=gettext_lazy(
            "The contact's language: a BCP 47 tag such as it or it-IT (it_IT is stored as it-IT; "
            "anything else is the row's error). Empty: the workspace's default language."
        ),
    )
    timezone = serializers.CharField(
        required=False,
        help_text=gettext_lazy(
            "IANA name such as Europe/Rome: quiet hours follow it. Empty: the workspace's."
        ),
    )
    customer_since = serializers.DateField(
        required=False,
        allow_null=True,
        help_text=gettext_lazy(
            "When this person became your customer (YYYY-MM-DD; not in the future): what email "
            "or SMS marketing on legitimate interest (soft opt-in) rests on. null clears it."
        ),
    )
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    attributes = serializers.DictField(required=False)
    consents = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text=format_lazy(
            gettext_lazy(
                "a list of consent objects (channel, purpose, state, source, occurred_at, ip, "
                "user_agent, consent_text_version); source is one of {sources}"
            ),
            sources=", ".join(ConsentSource.values),
        ),
    )


class BulkIn(serializers.Serializer[Any]):
    contacts = serializers.ListField(child=serializers.DictField())


class RowErrorOut(serializers.Serializer[Any]):
    row = serializers.IntegerField()
    field = serializers.CharField()
    message = serializers.CharField()


class RowResultOut(serializers.Serializer[Any]):
    row = serializers.IntegerField()
    status = serializers.CharField()
    id = serializers.IntegerField(allow_null=True)
    errors = RowErrorOut(many=True)  # type: ignore[assignment]  # the metaclass pops it


class BulkOut(serializers.Serializer[Any]):
    summary = serializers.DictField(child=serializers.IntegerField())
    results = RowResultOut(many=True)


def _tag_names(help_text: Any) -> serializers.ListField:  # a lazily translated text
    # Typed here, not left to the model's JSONField: null or an object is refused as a 400
    # naming the field instead of reaching the NOT NULL column (a form's "null" is a tag name).
    return serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=500,
        help_text=help_text,
    )


class SegmentSerializer(serializers.ModelSerializer[Segment]):
    problem = serializers.SerializerMethodField(
        help_text=gettext_lazy(
            "Why a segment saved before the rules tightened matches nobody; null when valid"
        )
    )
    tags_any = _tag_names(gettext_lazy("tag names: at least one"))
    tags_all = _tag_names(gettext_lazy("tag names: every one"))
    tags_none = _tag_names(gettext_lazy("tag names: none of them"))
    attribute_filters = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        max_length=100,
        help_text=gettext_lazy(
            'list of {"key": ..., "op": "eq|ne|in|exists|missing|gt|gte|lt|lte|contains", '
            '"value": ...}'
        ),
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "tags_any",
            "tags_all",
            "tags_none",
            "attribute_filters",
            "problem",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def to_internal_value(self, data: Any) -> Any:
        # A definition sent under a name this API does not know would otherwise be dropped
        # silently, saving a segment that matches everyone.
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in self.fields)
            if unknown:
                writable = ", ".join(n for n, f in self.fields.items() if not f.read_only)
                raise serializers.ValidationError(
                    {
                        name[:100]: _("Unknown field: a segment has %(fields)s.")
                        % {"fields": writable}
                        for name in unknown[:20]
                    }
                )
        return super().to_internal_value(data)

    def get_problem(self, segment: Segment) -> str | None:
        from contacts.segments import segment_problem

        return segment_problem(segment)

    def validate_name(self, value: str) -> str:
        # Names are unique per workspace; the constraint names a field this form does not show,
        # so the check is here, where it can say which field is wrong.
        workspace = self.context.get("workspace")
        if workspace is not None:
            taken = Segment.objects.for_workspace(workspace).filter(name=value)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise serializers.ValidationError(_("A segment with this name already exists."))
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from contacts.segments import segment_validate_definition

        segment_validate_definition(
            tags_any=attrs.get("tags_any", []),
            tags_all=attrs.get("tags_all", []),
            tags_none=attrs.get("tags_none", []),
            attribute_filters=attrs.get("attribute_filters", []),
        )
        return attrs


class CountOut(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    channel = serializers.CharField(allow_null=True)
    purpose = serializers.CharField(allow_null=True)
    problem = serializers.CharField(
        allow_null=True,
        help_text=gettext_lazy("set when the segment's saved rules are invalid (count is 0)"),
    )
