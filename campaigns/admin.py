"""Admin: social accounts (write-only tokens, connection check) and campaigns (status, badges,
progress, validation problems and previews in the editor, schedule/cancel/publish now/duplicate).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from campaigns.accounts import social_account_check, social_account_token_set
from campaigns.admin_content import CONTENT_INLINES
from campaigns.errors import CampaignsError
from campaigns.lifecycle import (
    campaign_cancel,
    campaign_duplicate,
    campaign_publish_now,
    campaign_schedule,
)
from campaigns.models import Campaign, PostStatus, PublishAttempt, SocialAccount, SocialPost
from campaigns.preview import campaign_fallback_previews, campaign_post_previews
from campaigns.validation import campaign_problems
from continuity.admin_access import WorkspaceScopedAdmin, WorkspaceScopedInline
from continuity.audit import audit_record

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
        "lateness_s",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _badge(text: str, status: str) -> SafeString:
    # Colours live in campaigns/admin.css: the CSP allows no inline style.
    return format_html('<span class="continuity-badge continuity-badge-{}">{}</span>', status, text)


@admin.register(Campaign)
class CampaignAdmin(WorkspaceScopedAdmin):
    list_display = ("name", "status", "scheduled_at", "late", "networks", "progress")
    list_filter = ("status", "outage_policy")
    search_fields = ("name", "text")
    date_hierarchy = "scheduled_at"
    filter_horizontal = ("accounts",)
    inlines = (SocialPostInline, *CONTENT_INLINES)
    actions = ("schedule", "cancel", "publish_now", "duplicate")

    class Media:
        css = {"all": ("campaigns/admin.css",)}

    readonly_fields = (
        "status",
        "problems",
        "post_preview",
        "fallback_preview",
        "claimed_at",
        "lateness_s",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "status", "scheduled_at", "problems")}),
        (
            gettext_lazy("Social content"),
            {"fields": ("text", "link", "image_url", "overrides", "accounts")},
        ),
        (gettext_lazy("Preview"), {"fields": ("post_preview", "fallback_preview")}),
        (
            gettext_lazy("Audience and fallback plan"),
            {
                "fields": (
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
                )
            },
        ),
        (
            gettext_lazy("Dispatch"),
            {"fields": ("claimed_at", "lateness_s", "created_at", "updated_at")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return super().get_queryset(request).prefetch_related("posts")

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

    @admin.display(description=gettext_lazy("what is missing before it can be scheduled"))
    def problems(self, obj: Campaign) -> SafeString | str:
        if obj.pk is None:
            return _("Save the campaign to see what is missing.")
        problems = campaign_problems(campaign=obj)
        if not problems:
            return _("Nothing: it can be scheduled.")
        return format_html(
            '<ul class="continuity-problems">{}</ul>',
            format_html_join("", "<li>{}</li>", ((p,) for p in problems)),
        )

    @admin.display(description=gettext_lazy("post per network"))
    def post_preview(self, obj: Campaign) -> SafeString | str:
        previews = campaign_post_previews(campaign=obj) if obj.pk else []
        if not previews:
            return _("Choose accounts to see the posts.")
        return format_html_join(
            "",
            '<div class="continuity-preview"><strong>{}</strong> ({})'
            '<pre class="continuity-pre">{}</pre>{}{}</div>',
            (
                (
                    p.network,
                    p.length,
                    p.text,
                    format_html("<div>{} {}</div>", _("image:"), p.image_url)
                    if p.image_url
                    else "",
                    format_html('<div class="continuity-problems">{}</div>', " ".join(p.problems)),
                )
                for p in previews
            ),
        )

    @admin.display(description=gettext_lazy("fallback message per channel"))
    def fallback_preview(self, obj: Campaign) -> SafeString | str:
        previews, who = campaign_fallback_previews(campaign=obj) if obj.pk else ([], "")
        if not previews:
            return _("Choose fallback channels and a message to see them.")
        # format_html escapes every argument: the previews are plain text (escape() again, so
        # even a string someone marked safe is shown, not run), and the sanitised email HTML
        # is escaped into the srcdoc attribute of a frame with no permissions at all.
        rows = format_html_join(
            "",
            '<div class="continuity-preview"><strong>{}</strong> {}<pre class="continuity-pre">'
            "{}</pre>{}<small>{}</small></div>",
            (
                (
                    p.channel,
                    escape(p.title),
                    escape(p.body),
                    format_html(
                        '<iframe sandbox="" srcdoc="{}" title="{}" class="continuity-frame">'
                        "</iframe>",
                        escape(p.html),
                        _("The email's HTML part"),
                    )
                    if p.html
                    else "",
                    escape(p.note),
                )
                for p in previews
            ),
        )
        return format_html("<div><em>{}</em></div>{}", _("As %s would see it:") % who, rows)

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
