"""Admin: social accounts (write-only tokens, connection check) and campaigns (status, badges,
progress, validation problems and previews in the editor, schedule/cancel/publish now/duplicate).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import get_current_timezone_name, localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from campaigns.accounts import social_account_check, social_account_token_set
from campaigns.admin_content import CONTENT_INLINES
from campaigns.calendar import campaign_calendar
from campaigns.composer import (
    audience_forecast,
    contacts_search,
    merge_tags,
    merge_tags_named,
    policy_in_words,
)
from campaigns.engagement import campaign_engagement_panel
from campaigns.errors import CampaignsError
from campaigns.lifecycle import (
    campaign_cancel,
    campaign_duplicate,
    campaign_publish_now,
    campaign_schedule,
)
from campaigns.models import (
    FALLBACK_CHANNELS,
    Campaign,
    CampaignStatus,
    OutagePolicy,
    PostStatus,
    PublishAttempt,
    SocialAccount,
    SocialNetwork,
    SocialPost,
)
from campaigns.preview import campaign_languages, campaign_preview_context
from campaigns.test_send import campaign_test_send
from campaigns.validation import campaign_problems
from contacts.language import primary_language
from contacts.language_names import language_name
from contacts.models import Channel, Contact
from contacts.selectors import contact_get
from continuity.admin_access import (
    WorkspaceScopedAdmin,
    WorkspaceScopedInline,
    admin_view_require,
    request_workspace,
)
from continuity.audit import audit_record
from continuity.tenancy import Access

DONE = (
    PostStatus.PUBLISHED,
    PostStatus.FAILED,
    PostStatus.REROUTED,
    PostStatus.SKIPPED,
    PostStatus.UNKNOWN,
)


class SocialAccountForm(forms.ModelForm):
    new_access_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        label=gettext_lazy("New access token"),
        help_text=gettext_lazy(
            "Write-only: paste a new token to replace the stored one. The stored token is "
            "encrypted and never shown."
        ),
    )

    class Meta:
        model = SocialAccount
        fields = [
            "network",
            "display_name",
            "page_id",
            "ig_user_id",
            "x_user_id",
            "phone_number_id",
            "new_access_token",
            "token_expires_at",
            "active",
            "language",
        ]


@admin.register(SocialAccount)
class SocialAccountAdmin(WorkspaceScopedAdmin):
    form = SocialAccountForm
    list_display = (
        "display_name",
        "network",
        "token",
        "token_expires_at",
        "active",
        "connection",
        "last_checked_at",
    )
    list_filter = ("network", "active")
    search_fields = ("display_name", "page_id", "ig_user_id", "x_user_id", "phone_number_id")
    readonly_fields = ("last_checked_at", "last_check_ok", "last_check_detail", "token")
    actions = ("check_connection",)

    @admin.display(description=gettext_lazy("token"))
    def token(self, obj: SocialAccount) -> str:
        return _("set (encrypted)") if obj.access_token_encrypted else _("missing")

    @admin.display(description=gettext_lazy("connection"))
    def connection(self, obj: SocialAccount) -> str:
        if obj.last_check_ok is None:
            return _("not checked")
        if obj.last_check_ok:
            return _("ok: %(detail)s") % {"detail": obj.last_check_detail}
        return _("failing: %(detail)s") % {"detail": obj.last_check_detail}

    def save_model(self, request: HttpRequest, obj: SocialAccount, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            token = form.cleaned_data.get("new_access_token")
            if token:
                social_account_token_set(account=obj, token=token)
                # A credential change: who set which account's token (never the token itself).
                audit_record(
                    access=self.access(request),
                    action="social_account.token_set",
                    target=obj,
                    detail={"network": obj.network},
                )

    @admin.action(description=gettext_lazy("Check connection"), permissions=["view"])
    def check_connection(self, request: HttpRequest, queryset: QuerySet[SocialAccount]) -> None:
        for account in queryset:
            status = social_account_check(account=account)
            level = messages.SUCCESS if status.ok else messages.ERROR
            self.message_user(request, f"{account}: {status.detail}", level)


class SocialPostInline(WorkspaceScopedInline):
    model = SocialPost
    extra = 0
    can_delete = False
    fields = (
        "account",
        "network",
        "status",
        "external_id",
        "attempts",
        "last_error",
        "published_at",
        "late_by",
    )
    readonly_fields = fields

    @admin.display(description=gettext_lazy("published late by"))
    def late_by(self, obj: SocialPost) -> str:
        if not obj.lateness_s:
            return "-"
        return _("%(minutes)s min %(seconds)s s") % {
            "minutes": obj.lateness_s // 60,
            "seconds": obj.lateness_s % 60,
        }

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _badge(text: str, status: str) -> SafeString:
    # Colours live in campaigns/admin.css: the CSP allows no inline style.
    return format_html('<span class="continuity-badge continuity-badge-{}">{}</span>', status, text)


# Statuses in which the campaign can still be changed and scheduled: only then is "what is
# missing" worth saying (a sent campaign is not asked to choose its audience again).
EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
OVERRIDE_NETWORKS = (
    SocialNetwork.FACEBOOK,
    SocialNetwork.INSTAGRAM,
    SocialNetwork.X,
)
OVERRIDE_FIELDS = {
    "text": (gettext_lazy("Text on %(network)s"), forms.Textarea(attrs={"rows": 3})),
    "link": (gettext_lazy("Link on %(network)s"), forms.URLInput()),
    "image_url": (gettext_lazy("Image address on %(network)s"), forms.URLInput()),
}
VIEW_CAMPAIGN = "campaigns.view_campaign"
CHANGE_CAMPAIGN = "campaigns.change_campaign"
VIEW_CONTACT = "contacts.view_contact"


def _language_choices(campaign: Campaign) -> list[tuple[str, str]]:
    """The composer's language select: the picked contact's own first (what a real send does),
    then each language the campaign has content in, the workspace's default first."""
    languages = campaign_languages(campaign=campaign)
    return [
        (
            "",
            _("The picked contact's language, else %(default)s")
            % {"default": language_name(languages[0])},
        ),
        *((code, language_name(code)) for code in languages),
    ]


def override_field_name(network: str, part: str) -> str:
    return f"override_{network}_{part}"


class AccountChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: SocialAccount) -> str:
        return _("%(network)s: %(name)s") % {
            "network": obj.get_network_display(),
            "name": obj.display_name,
        }


class OrderedChannelsWidget(forms.CheckboxSelectMultiple):
    """Checkboxes in the order the channels are tried; the composer's script moves them. The
    order posted is the order on the page, so a moved box saves its new place."""

    template_name = "admin/campaigns/campaign/ordered_channels.html"


class CampaignForm(forms.ModelForm):
    """The composer's form: accounts, fallback channels and per-network texts as real fields
    with plain labels; the stored JSON (overrides, fallback_channels) is built from them."""

    accounts = AccountChoiceField(
        queryset=SocialAccount.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("Publish to"),
        help_text=gettext_lazy("The pages, profiles and numbers this campaign posts from."),
    )
    fallback_channels = forms.MultipleChoiceField(
        choices=[(c.value, c.label) for c in FALLBACK_CHANNELS],
        required=False,
        widget=OrderedChannelsWidget,
        label=gettext_lazy("Fallback channels, in the order to try"),
        help_text=gettext_lazy(
            "Tick the channels your customers may get instead during an outage. With “each "
            "contact's first reachable channel”, each contact gets the first ticked channel "
            "they agreed to and can be reached on. Use Move up to change the order."
        ),
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "scheduled_at",
            "accounts",
            "text",
            "link",
            "image_url",
            "segment",
            "purpose",
            "fallback_channels",
            "message",
            "send_mode",
            "outage_policy",
            "hold_then_reroute_minutes",
            "max_hold_minutes",
            "sms_budget_segments",
            "on_failback",
        ]
        labels = {
            "name": gettext_lazy("Campaign name"),
            "scheduled_at": gettext_lazy("Publish at"),
            "text": gettext_lazy("Post text"),
            "link": gettext_lazy("Link"),
            "image_url": gettext_lazy("Image address"),
            "segment": gettext_lazy("Audience"),
            "purpose": gettext_lazy("Kind of message"),
            "message": gettext_lazy("Fallback message"),
            "send_mode": gettext_lazy("Send each contact"),
            "outage_policy": gettext_lazy("If the network is down when this is due"),
            "hold_then_reroute_minutes": gettext_lazy("Wait before sending instead (minutes)"),
            "max_hold_minutes": gettext_lazy("Hold the post at most (minutes)"),
            "sms_budget_segments": gettext_lazy("SMS budget (message parts)"),
            "on_failback": gettext_lazy("When the network comes back"),
        }
        help_texts = {
            "scheduled_at": gettext_lazy("The date and time the post goes out."),
            "text": gettext_lazy(
                "What the post says. Merge tags such as {{ first_name }} are for the fallback "
                "messages; a social post is the same for everyone."
            ),
            "image_url": gettext_lazy(
                "A public https address of the picture (Instagram needs one)."
            ),
            "segment": gettext_lazy(
                "Who gets the fallback messages if the network is down. Build segments under "
                "Contacts > Segments."
            ),
            "purpose": gettext_lazy(
                "Marketing goes only to contacts who agreed to marketing on that channel; "
                "service notices to those who agreed to service notices."
            ),
            "message": gettext_lazy("What each fallback channel says (email, SMS, push)."),
            "hold_then_reroute_minutes": gettext_lazy(
                "Only for “Hold for a while, then reroute”: a short outage is waited out."
            ),
            "max_hold_minutes": gettext_lazy(
                "Only for “Hold”: if the network is still down this long after the due time, "
                "the fallback messages go out instead."
            ),
            "sms_budget_segments": gettext_lazy(
                "The most SMS parts one outage may spend on this campaign. A text over 160 "
                "characters (70 with some accents or emoji) is sent and billed as several "
                "parts. Leave empty for no limit."
            ),
        }
        widgets = {
            "outage_policy": forms.RadioSelect,
            "on_failback": forms.RadioSelect,
            "send_mode": forms.RadioSelect,
            "text": forms.Textarea(attrs={"rows": 4, "class": "composer-text"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        overrides = self.instance.overrides if isinstance(self.instance.overrides, dict) else {}
        for network in OVERRIDE_NETWORKS:
            saved = overrides.get(network.value)
            saved = saved if isinstance(saved, dict) else {}
            for part, (label, widget) in OVERRIDE_FIELDS.items():
                self.fields[override_field_name(network.value, part)] = forms.CharField(
                    required=False,
                    label=label % {"network": network.label},
                    widget=copy.deepcopy(widget),
                    initial=saved.get(part, ""),
                    help_text=_("Leave empty to use the main one."),
                    max_length=5000,
                )
        # The split date/time inputs share one label: name each for screen readers.
        when = self.fields.get("scheduled_at")
        if when is not None:
            # The admin reads and writes the time in the workspace's zone; the date widget's own
            # note compares the browser's clock with it and says only "behind server time".
            when.help_text = _(
                "The date and time the post goes out, in %(zone)s (the workspace's time zone)."
            ) % {"zone": get_current_timezone_name()}
        for widget, name in zip(
            getattr(when.widget, "widgets", []) if when else [],
            (_("Publish on (date)"), _("Publish at (time)")),
            strict=False,
        ):
            widget.attrs["aria-label"] = name
        # Saved channels first, in their order, then the others: the page shows the order.
        field = self.fields["fallback_channels"]
        saved_channels = [
            c for c in (self.instance.fallback_channels or []) if c in FALLBACK_CHANNELS
        ]
        rest = [c for c in FALLBACK_CHANNELS if c not in saved_channels]
        labels = dict(Channel.choices)
        field.choices = [(c, labels[c]) for c in [*saved_channels, *rest]]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        overrides: dict[str, dict[str, str]] = {}
        for network in OVERRIDE_NETWORKS:
            values = {
                part: cleaned.get(override_field_name(network.value, part), "").strip()
                for part in OVERRIDE_FIELDS
            }
            for part in ("link", "image_url"):
                if values[part] and not values[part].startswith(("https://", "http://")):
                    self.add_error(
                        override_field_name(network.value, part),
                        _("Give a full address starting with https://."),
                    )
            chosen = {part: value for part, value in values.items() if value}
            if chosen:
                overrides[network.value] = chosen
        self.instance.overrides = overrides
        if (
            cleaned.get("outage_policy") == OutagePolicy.HOLD_THEN_REROUTE
            and cleaned.get("hold_then_reroute_minutes") is not None
            and cleaned.get("max_hold_minutes") is not None
            and cleaned["hold_then_reroute_minutes"] > cleaned["max_hold_minutes"]
        ):
            self.add_error(
                "hold_then_reroute_minutes",
                _("Wait at most as long as the longest hold (%(max)d minutes).")
                % {"max": cleaned["max_hold_minutes"]},
            )
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(WorkspaceScopedAdmin):
    """The composer: one page from the post to the outage plan, with previews for a chosen
    contact, the audience per channel, test sends and Schedule / Publish now buttons."""

    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    change_list_template = "admin/campaigns/campaign/change_list.html"
    list_display = ("name", "status", "scheduled_at", "late", "networks", "progress")
    list_filter = ("status", "outage_policy")
    search_fields = ("name", "text")
    date_hierarchy = "scheduled_at"
    # Each row draws badges and a progress bar: 50 a page keeps the list quick to render.
    list_per_page = 50
    inlines = (SocialPostInline, *CONTENT_INLINES)
    actions = ("schedule", "cancel", "publish_now", "duplicate")

    class Media:
        css = {"all": ("campaigns/admin.css", "campaigns/composer.css")}
        js = ("campaigns/composer.js",)

    readonly_fields = (
        "status",
        "problems",
        "merge_tags",
        "policy_words",
        "audience",
        "previews",
        "test_send",
        "claimed_at_shown",
        "late_by",
        "engagement",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        overrides = tuple(
            override_field_name(network.value, part)
            for network in OVERRIDE_NETWORKS
            for part in OVERRIDE_FIELDS
        )
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (None, {"fields": ("name", "scheduled_at", "status", "problems")}),
            (_("1. Where to publish"), {"fields": ("accounts",)}),
            (_("2. The post"), {"fields": ("text", "link", "image_url", "merge_tags")}),
            (
                _("Different text, link or image per network (optional)"),
                {"fields": overrides, "classes": ("collapse",)},
            ),
            (
                _("3. If the network is down"),
                {
                    "fields": (
                        "outage_policy",
                        "hold_then_reroute_minutes",
                        "max_hold_minutes",
                        "on_failback",
                        "policy_words",
                    )
                },
            ),
            (
                _("4. Who gets what instead"),
                {
                    "fields": (
                        "segment",
                        "purpose",
                        "fallback_channels",
                        "send_mode",
                        "sms_budget_segments",
                        "message",
                        "audience",
                    )
                },
            ),
            (_("5. Preview and test"), {"fields": ("previews", "test_send")}),
        ]
        if obj is not None and obj.claimed_at is not None:
            fieldsets.append((_("Publishing"), {"fields": ("claimed_at_shown", "late_by")}))
        if obj is not None and obj.status not in EDITABLE:
            fieldsets.append((_("Engagement"), {"fields": ("engagement",)}))
        return fieldsets

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # The fieldsets name the override fields the form adds itself: not model fields.
        kwargs["fields"] = CampaignForm.Meta.fields
        form = super().get_form(request, obj, change, **kwargs)
        workspace = request_workspace(request)
        accounts = (
            SocialAccount.objects.for_workspace(workspace)
            if workspace is not None
            else SocialAccount.objects.none()
        )

        class ScopedForm(form):  # type: ignore[valid-type,misc]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, **kw)
                self.fields["accounts"].queryset = accounts.order_by("network", "display_name")
                # A message belongs to one campaign: offer only this one's and the free ones
                # (not every campaign's message of the workspace, which grows with each one).
                message = self.fields.get("message")
                if message is not None:
                    mine = Q(campaign__isnull=True)
                    if self.instance.pk is not None:
                        mine |= Q(campaign=self.instance.pk)
                    message.queryset = message.queryset.filter(mine)

        return ScopedForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return super().get_queryset(request).prefetch_related("posts")

    @admin.display(description=gettext_lazy("Engagement"))
    def engagement(self, obj: Campaign | None) -> str:
        return campaign_engagement_panel(obj)

    # --- list columns ---------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("late"))
    def late(self, obj: Campaign) -> str:
        if obj.claimed_at is None or obj.lateness_s < settings.CAMPAIGNS_LATE_AFTER_S:
            return ""
        return _("%(minutes)s min %(seconds)s s late") % {
            "minutes": obj.lateness_s // 60,
            "seconds": obj.lateness_s % 60,
        }

    @admin.display(description=gettext_lazy("networks"))
    def networks(self, obj: Campaign) -> SafeString | str:
        by_network: dict[str, Counter[str]] = {}
        for post in obj.posts.all():
            by_network.setdefault(post.network, Counter())[post.status] += 1
        if not by_network:
            return "-"
        badges = []
        for network, counts in sorted(by_network.items()):
            worst = next(
                (s for s in (PostStatus.FAILED, PostStatus.UNKNOWN) if counts[s]),
                max(counts, key=lambda s: counts[s]),
            )
            label = f"{network}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            badges.append(_badge(label, worst))
        return format_html_join("", "{}", ((b,) for b in badges))

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, obj: Campaign) -> SafeString | str:
        posts = list(obj.posts.all())
        if not posts:
            return "-"
        done = sum(1 for p in posts if p.status in DONE)
        percent = round(100 * done / len(posts))
        return format_html(
            '<progress max="100" value="{}"></progress> {}',
            percent,
            _("%(done)s/%(total)s posts") % {"done": done, "total": len(posts)},
        )

    # --- editor panels --------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("What is missing before it can be scheduled"))
    def problems(self, obj: Campaign) -> SafeString | str:
        if obj.pk is None:
            return _("Save the campaign to see what is missing.")
        if obj.status not in EDITABLE:
            # Validation is about what can still be changed: a sent campaign is left alone.
            return _("Nothing to check: this campaign is %(status)s.") % {
                "status": obj.get_status_display().lower()
            }
        problems = campaign_problems(campaign=obj)
        if not problems:
            return _("Nothing: it can be scheduled.")
        return format_html(
            '<ul class="continuity-problems">{}</ul>',
            format_html_join("", "<li>{}</li>", ((p,) for p in problems)),
        )

    @admin.display(description=gettext_lazy("Merge tags"))
    def merge_tags(self, obj: Campaign) -> SafeString:
        workspace_id = obj.workspace_id if obj.pk else None
        tags = merge_tags(workspace=workspace_id) if workspace_id else merge_tags_named()
        return render_to_string("admin/campaigns/campaign/_merge_tags.html", {"tags": tags})

    @admin.display(description=gettext_lazy("In plain words"))
    def policy_words(self, obj: Campaign) -> SafeString | str:
        networks = sorted({a.network for a in obj.accounts.all()}) if obj.pk else []
        return format_html_join(
            "", "<p>{}</p>", ((line,) for line in policy_in_words(campaign=obj, networks=networks))
        )

    @admin.display(description=gettext_lazy("Audience now"))
    def audience(self, obj: Campaign) -> SafeString | str:
        if obj.pk is None:
            return _("Save the campaign to count its audience.")
        url = reverse("admin:campaigns_campaign_audience", args=[obj.pk])
        return format_html(
            '<div id="composer-audience" data-url="{}" aria-live="polite">'
            '<a href="{}">{}</a></div>',
            url,
            url,
            _("Count who would get what"),
        )

    @admin.display(description=gettext_lazy("Preview"))
    def previews(self, obj: Campaign) -> SafeString | str:
        if obj.pk is None:
            return _("Save the campaign to preview it.")
        return render_to_string(
            "admin/campaigns/campaign/_preview_panel.html",
            {
                "search_url": reverse("admin:campaigns_campaign_contact_search"),
                "preview_url": reverse("admin:campaigns_campaign_preview", args=[obj.pk]),
                "preview": campaign_preview_context(campaign=obj),
                "languages": _language_choices(obj),
            },
        )

    @admin.display(description=gettext_lazy("Send me a test"))
    def test_send(self, obj: Campaign) -> SafeString | str:
        if obj.pk is None:
            return _("Save the campaign to send yourself a test.")
        return render_to_string(
            "admin/campaigns/campaign/_test_send.html",
            {
                "url": reverse("admin:campaigns_campaign_test_send", args=[obj.pk]),
                "channels": [(c.value, c.label) for c in FALLBACK_CHANNELS],
                "languages": _language_choices(obj),
            },
        )

    @admin.display(description=gettext_lazy("Picked up for publishing at"))
    def claimed_at_shown(self, obj: Campaign) -> str:
        return date_format(localtime(obj.claimed_at), "DATETIME_FORMAT") if obj.claimed_at else "-"

    @admin.display(description=gettext_lazy("Published late by"))
    def late_by(self, obj: Campaign) -> str:
        if not obj.lateness_s:
            return _("on time")
        return _("%(minutes)s min %(seconds)s s") % {
            "minutes": obj.lateness_s // 60,
            "seconds": obj.lateness_s % 60,
        }

    # --- composer views -------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "contacts/search/",
                view(self.contact_search_view),
                name="campaigns_campaign_contact_search",
            ),
            path("calendar/", view(self.calendar_view), name="campaigns_campaign_calendar"),
            path(
                "<path:object_id>/preview/",
                view(self.preview_view),
                name="campaigns_campaign_preview",
            ),
            path(
                "<path:object_id>/audience/",
                view(self.audience_view),
                name="campaigns_campaign_audience",
            ),
            path(
                "<path:object_id>/test-send/",
                view(self.test_send_view),
                name="campaigns_campaign_test_send",
            ),
            *super().get_urls(),
        ]

    def _campaign(self, request: HttpRequest, object_id: str, perm: str) -> tuple[Access, Campaign]:
        access = admin_view_require(request, perm)
        campaign = self.get_object(request, object_id)
        if campaign is None:  # missing, or another workspace's: the same answer
            raise Http404
        return access, campaign

    def _picked_contact(self, campaign: Campaign, raw: str | None) -> Contact | None:
        if not raw:
            return None
        try:
            return contact_get(workspace=campaign.workspace_id, pk=int(raw))
        except (ValueError, Http404):
            return None

    def _picked_language(self, campaign: Campaign, raw: str | None) -> str:
        """One of the campaign's content languages, else "" (the picked contact's language,
        else the workspace's default): the select offers no other, so anything else is junk."""
        language = primary_language(raw or "")
        return language if language in campaign_languages(campaign=campaign) else ""

    def contact_search_view(self, request: HttpRequest) -> JsonResponse:
        access = admin_view_require(request, VIEW_CONTACT)
        found = contacts_search(workspace=access.workspace_required, query=request.GET.get("q", ""))
        return JsonResponse({"results": [{"id": pk, "label": label} for pk, label in found]})

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The previews for the picked contact, with the form's unsaved post texts when the
        editor posts them: nothing is saved."""
        _access, campaign = self._campaign(request, object_id, VIEW_CAMPAIGN)
        data = request.POST if request.method == "POST" else request.GET
        contact = self._picked_contact(campaign, data.get("contact"))
        networks = None
        if request.method == "POST":
            form = self.get_form(request, campaign, change=True)(data, instance=campaign)
            form.is_valid()  # fills cleaned_data for the valid fields and the overrides
            for name in ("text", "link", "image_url"):
                if name in form.cleaned_data:
                    setattr(campaign, name, form.cleaned_data[name])
            if "fallback_channels" in form.cleaned_data:
                campaign.fallback_channels = list(form.cleaned_data["fallback_channels"])
            if "accounts" in form.cleaned_data:
                networks = sorted({a.network for a in form.cleaned_data["accounts"]})
        return render(
            request,
            "admin/campaigns/campaign/_previews.html",
            campaign_preview_context(
                campaign=campaign,
                contact=contact,
                networks=networks,
                language=self._picked_language(campaign, data.get("language")),
            ),
        )

    def audience_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        _access, campaign = self._campaign(request, object_id, VIEW_CAMPAIGN)
        networks = sorted({a.network for a in campaign.accounts.all()})
        forecasts = audience_forecast(campaign=campaign, networks=networks)
        return render(
            request,
            "admin/campaigns/campaign/_audience.html",
            {"campaign": campaign, "forecasts": forecasts, "segment": campaign.segment},
        )

    def test_send_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        access, campaign = self._campaign(request, object_id, CHANGE_CAMPAIGN)
        if request.method != "POST":
            return JsonResponse(
                {"ok": False, "detail": _("Send a test with the button on the campaign.")},
                status=405,
            )
        result = campaign_test_send(
            campaign=campaign,
            channel=request.POST.get("channel", ""),
            address=request.POST.get("address", ""),
            access=access,
            contact=self._picked_contact(campaign, request.POST.get("contact")),
            language=self._picked_language(campaign, request.POST.get("language")),
        )
        return JsonResponse(
            {"ok": result.ok, "detail": result.detail}, status=200 if result.ok else 400
        )

    def calendar_view(self, request: HttpRequest) -> HttpResponse:
        access = admin_view_require(request, VIEW_CAMPAIGN)
        view = campaign_calendar(
            workspace=access.workspace_required,
            mode=request.GET.get("view", "month"),
            around=request.GET.get("date", ""),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Campaign calendar"),
            "opts": self.model._meta,
            "calendar": view,
        }
        return render(request, "admin/campaigns/campaign/calendar.html", context)

    # --- Schedule and Publish now on the form -----------------------------------------------------

    def _form_action(self, request: HttpRequest, obj: Campaign) -> HttpResponse | None:
        action: Callable[..., Campaign]
        if "_schedule" in request.POST:
            action, done = campaign_schedule, _("“%(name)s” is scheduled.")
        elif "_publish_now" in request.POST:
            action, done = campaign_publish_now, _("“%(name)s” is being published now.")
        else:
            return None
        # The form's save already needed the change right; the buttons need it too.
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        try:
            action(campaign=obj)
        except CampaignsError as exc:
            detail = exc.detail if isinstance(exc.detail, str) else " ".join(exc.detail)
            self.message_user(
                request,
                _("Saved, but not scheduled: %(detail)s") % {"detail": detail},
                messages.ERROR,
            )
        else:
            self.message_user(request, done % {"name": obj.name}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[obj.pk]))

    def response_change(self, request: HttpRequest, obj: Campaign) -> HttpResponse:
        return self._form_action(request, obj) or super().response_change(request, obj)

    def response_add(
        self, request: HttpRequest, obj: Campaign, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._form_action(request, obj) or super().response_add(
            request, obj, post_url_continue
        )

    def render_change_form(  # noqa: PLR0917 - Django's signature
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        context["composer_buttons"] = self.has_change_permission(request, obj) and (
            obj is None or obj.status == CampaignStatus.DRAFT
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- actions --------------------------------------------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Campaign],
        action: Any,
        done_message: Callable[[int], str],
    ) -> None:
        done = 0
        for campaign in queryset:
            try:
                action(campaign=campaign)
                done += 1
            except CampaignsError as exc:
                detail = exc.detail if isinstance(exc.detail, str) else " ".join(exc.detail)
                self.message_user(request, f"{campaign}: {detail}", messages.ERROR)
        if done:
            self.message_user(request, done_message(done), messages.SUCCESS)

    @admin.action(description=gettext_lazy("Schedule"), permissions=["change"])
    def schedule(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._each(
            request,
            queryset,
            campaign_schedule,
            lambda n: (
                ngettext("%(n)d campaign scheduled.", "%(n)d campaigns scheduled.", n) % {"n": n}
            ),
        )

    @admin.action(description=gettext_lazy("Cancel"), permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._each(
            request,
            queryset,
            campaign_cancel,
            lambda n: (
                ngettext("%(n)d campaign cancelled.", "%(n)d campaigns cancelled.", n) % {"n": n}
            ),
        )

    @admin.action(description=gettext_lazy("Publish now"), permissions=["change"])
    def publish_now(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._each(
            request,
            queryset,
            campaign_publish_now,
            lambda n: (
                ngettext(
                    "%(n)d campaign sent to publishing.", "%(n)d campaigns sent to publishing.", n
                )
                % {"n": n}
            ),
        )

    @admin.action(description=gettext_lazy("Duplicate"), permissions=["add"])
    def duplicate(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._each(
            request,
            queryset,
            campaign_duplicate,
            lambda n: (
                ngettext(
                    "%(n)d campaign duplicated as a draft.",
                    "%(n)d campaigns duplicated as drafts.",
                    n,
                )
                % {"n": n}
            ),
        )


@admin.register(PublishAttempt)
class PublishAttemptAdmin(WorkspaceScopedAdmin):
    list_display = ("at", "network", "account", "kind", "probe", "detail")
    list_filter = ("network", "kind", "probe")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
