"""The campaign page's content editors: the fallback message per channel and per language, and
the social post per language, inline on the campaign.

The fallback content is still a delivery.Message (and its MessageVariants) behind the scenes,
created with the campaign the first time content is written here, so the marketer never creates
a message elsewhere and picks it from a list. A Message is not a child of the campaign (the
campaign points at it), so these inlines bring formsets of their own that find the rows through
``campaign.message`` and create it when missing. Editing a variant is editing the message (or
the campaign, for a post variant): the inlines ask for those permissions.

The SMS fields carry a live segment and cost counter (campaigns/static/campaigns/sms-counter.js,
no inline script under the CSP); its sentence comes translated from here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.checks import InlineModelAdminChecks
from django.db.models import QuerySet
from django.forms.models import BaseModelFormSet, modelformset_factory
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from campaigns.content import campaign_message_ensure
from campaigns.models import Campaign, CampaignPostVariant
from campaigns.validation import content_language_clean
from continuity.admin_access import WorkspaceScopedInline, request_access
from delivery.models import Message, MessageVariant
from delivery.sms_segments import GSM7_BASIC, GSM7_EXTENSION

CHANNEL_FIELDS = (
    "email_subject",
    "email_html",
    "email_text",
    "sms_text",
    "push_title",
    "push_body",
    "push_url",
    "push_icon",
)


def _sms_widget() -> forms.Textarea:
    """The SMS textarea, with what the counter script needs as data attributes."""
    return forms.Textarea(
        attrs={
            "rows": 3,
            "class": "continuity-sms-text",
            "data-sms-counter": "1",
            "data-gsm7-basic": "".join(sorted(GSM7_BASIC)),
            "data-gsm7-extension": "".join(sorted(GSM7_EXTENSION)),
            "data-segment-cost": str(settings.REROUTE_SMS_SEGMENT_COST),
            "data-sentence": _(
                "{characters} characters, {encoding}: {segments} segment(s), about {cost} "
                "per message"
            ),
        }
    )


class _LanguageForm(forms.ModelForm):
    """A variant form whose language is checked and stored as its primary subtag."""

    def clean_language(self) -> str:
        try:
            return content_language_clean(self.cleaned_data.get("language"))
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="language") from exc


class MessageVariantForm(_LanguageForm):
    class Meta:
        model = MessageVariant
        fields = ("language", *CHANNEL_FIELDS, "whatsapp_language")
        widgets = {"sms_text": _sms_widget()}


class MessageBaseForm(forms.ModelForm):
    class Meta:
        model = Message
        fields = (*CHANNEL_FIELDS, "whatsapp_template", "whatsapp_language")
        widgets = {"sms_text": _sms_widget()}
        labels = {
            "email_subject": _("email subject"),
            "email_html": _("email HTML"),
            "email_text": _("email text"),
            "sms_text": _("SMS text"),
            "push_title": _("push title"),
            "push_body": _("push body"),
            "push_url": _("push URL"),
            "push_icon": _("push icon"),
            "whatsapp_template": _("WhatsApp template"),
            "whatsapp_language": _("WhatsApp template language"),
        }


class PostVariantForm(_LanguageForm):
    class Meta:
        model = CampaignPostVariant
        fields = ("language", "text", "link", "image_url")


class _CampaignFormSet(BaseModelFormSet):
    """A model formset bound to a campaign the way an inline formset is bound to its parent."""

    def __init__(
        self,
        data: Any = None,
        files: Any = None,
        *,
        instance: Campaign | None = None,
        save_as_new: bool = False,
        prefix: str | None = None,
        queryset: QuerySet[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.instance = instance if instance is not None else Campaign()
        self.save_as_new = save_as_new
        super().__init__(data, files, prefix=prefix, queryset=self.rows(queryset), **kwargs)

    def rows(self, queryset: QuerySet[Any] | None) -> QuerySet[Any]:
        raise NotImplementedError

    @classmethod
    def get_default_prefix(cls) -> str:
        return f"content-{cls.model._meta.model_name}"


class MessageBaseFormSet(_CampaignFormSet):
    def rows(self, queryset: QuerySet[Any] | None) -> QuerySet[Any]:
        campaign = self.instance
        if campaign.pk is None or campaign.message_id is None:
            return Message.objects.none()
        return Message.objects.filter(pk=campaign.message_id, workspace_id=campaign.workspace_id)

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Any:
        # The message is made (and linked to the campaign) now, then the form's values land on
        # it: the campaign never points at a message that is not saved.
        message = campaign_message_ensure(self.instance)
        for name in form.Meta.fields:  # type: ignore[attr-defined]
            setattr(message, name, getattr(form.instance, name))
        message.purpose = self.instance.purpose
        form.instance = message
        return form.save(commit=commit)

    def save_existing(self, form: forms.ModelForm, obj: Any, commit: bool = True) -> Any:
        # The message follows the campaign's purpose: a mismatch would only be a problem to fix.
        form.instance.purpose = self.instance.purpose
        return super().save_existing(form, obj, commit=commit)


class MessageVariantFormSet(_CampaignFormSet):
    def rows(self, queryset: QuerySet[Any] | None) -> QuerySet[Any]:
        campaign = self.instance
        if campaign.pk is None or campaign.message_id is None:
            return MessageVariant.objects.none()
        return MessageVariant.objects.filter(
            message_id=campaign.message_id, workspace_id=campaign.workspace_id
        ).order_by("language")

    def clean(self) -> None:
        super().clean()
        _languages_unique(self)

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Any:
        message = campaign_message_ensure(self.instance)
        form.instance.message = message
        form.instance.workspace_id = message.workspace_id
        return super().save_new(form, commit=commit)


class PostVariantFormSet(_CampaignFormSet):
    def rows(self, queryset: QuerySet[Any] | None) -> QuerySet[Any]:
        campaign = self.instance
        if campaign.pk is None:
            return CampaignPostVariant.objects.none()
        return CampaignPostVariant.objects.filter(
            campaign_id=campaign.pk, workspace_id=campaign.workspace_id
        ).order_by("language")

    def clean(self) -> None:
        super().clean()
        _languages_unique(self)

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Any:
        form.instance.campaign = self.instance
        form.instance.workspace_id = self.instance.workspace_id
        return super().save_new(form, commit=commit)


def _languages_unique(formset: BaseModelFormSet) -> None:
    """One variant per language: said on the form, not as the database's IntegrityError."""
    seen: set[str] = set()
    for form in formset.forms:
        if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE"):
            continue
        language = form.cleaned_data.get("language")
        if not language:
            continue
        if language in seen:
            form.add_error(
                "language",
                _("There is already a variant in %(language)s.") % {"language": language},
            )
        seen.add(language)


class _NoRelationChecks(InlineModelAdminChecks):
    """These inlines reach their rows through the campaign's message, not a foreign key to
    the campaign: the inline relation check does not apply."""

    def _check_relation(self, obj: Any, parent_model: Any) -> list[Any]:
        return []

    def _check_exclude_of_parent_model(self, obj: Any, parent_model: Any) -> list[Any]:
        return []


class _CampaignContentInline(WorkspaceScopedInline):
    """Permissions are those of the row the content belongs to (``perm_model``)."""

    checks_class = _NoRelationChecks
    template = "admin/edit_inline/stacked.html"
    extra = 0
    perm_model: type[Any] = Message
    formset_class: type[_CampaignFormSet]

    def _has(self, request: HttpRequest, action: str) -> bool:
        meta = self.perm_model._meta
        return request_access(request).has(f"{meta.app_label}.{action}_{meta.model_name}")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._has(request, "view")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._has(request, "change") and self._has(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._has(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._has(request, "change")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        can_add = self.has_add_permission(request, obj)
        return modelformset_factory(
            self.model,
            form=self.form,
            formset=self.formset_class,
            extra=self.get_extra(request, obj) if can_add else 0,
            max_num=self.get_max_num(request, obj),
            can_delete=self.can_delete and self.has_delete_permission(request, obj),
        )


class FallbackContentInline(_CampaignContentInline):
    """The fallback message's base content: the workspace's default language."""

    model = Message
    form = MessageBaseForm
    formset_class = MessageBaseFormSet
    max_num = 1
    can_delete = False
    verbose_name = _("fallback content (default language)")
    verbose_name_plural = _("fallback content (default language)")

    class Media:
        js = ("campaigns/sms-counter.js",)

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 0 if obj is not None and obj.message_id is not None else 1

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FallbackVariantInline(_CampaignContentInline):
    """The fallback message in other languages: each contact gets their language's."""

    model = MessageVariant
    form = MessageVariantForm
    formset_class = MessageVariantFormSet
    verbose_name = _("fallback content in another language")
    verbose_name_plural = _("fallback content in other languages")


class PostVariantInline(_CampaignContentInline):
    """The social post in other languages: each account posts its language's."""

    model = CampaignPostVariant
    form = PostVariantForm
    formset_class = PostVariantFormSet
    perm_model = Campaign
    verbose_name = _("social post in another language")
    verbose_name_plural = _("social post in other languages")


CONTENT_INLINES = (FallbackContentInline, FallbackVariantInline, PostVariantInline)
