from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from continuity.admin_access import WorkspaceScopedAdmin, WorkspaceScopedInline
from delivery.dispatch import deliveries_retry_failed
from delivery.models import Delivery, DeliveryEvent, Message, ProviderReceipt
from delivery.states import DeliveryStatus


class DeliveryEventInline(WorkspaceScopedInline):
    model = DeliveryEvent
    extra = 0
    can_delete = False
    fields = ("occurred_at", "status", "detail")
    readonly_fields = fields
    ordering = ("occurred_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(WorkspaceScopedAdmin):
    list_display = (
        "id",
        "kind",
        "message",
        "contact",
        "channel",
        "status",
        "attempt",
        "provider",
        "error_code",
        "cost_units",
        "updated_at",
    )
    list_filter = ("kind", "channel", "status", "provider", "message")
    search_fields = ("provider_message_id", "contact__email", "contact__external_id")
    list_select_related = ("message", "contact")
    raw_id_fields = ("message", "contact")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [DeliveryEventInline]
    actions = ["retry_failed"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Deliveries are planned by the reroute engine, never typed in by hand.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A delivery is a record of what a provider was asked and answered: its page is
        # read-only (no Save). The list keeps the "retry failed" action, which needs the change
        # permission without an object.
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The one row per (message, contact, channel) is what stops a second send: never deleted.
        return False

    @admin.action(
        description=gettext_lazy("Retry failed deliveries (sent and unknown ones are left alone)"),
        permissions=["change"],
    )
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        # The queryset is the workspace's (get_queryset): another workspace's ids never get here.
        ids = list(queryset.values_list("id", flat=True))
        count = deliveries_retry_failed(ids=ids)
        system = queryset.filter(message__isnull=True, status=DeliveryStatus.FAILED).count()
        skipped = len(ids) - count - system
        self.message_user(
            request,
            _("%(count)s failed deliveries queued again; %(skipped)s left alone (not failed).")
            % {"count": count, "skipped": skipped},
            messages.SUCCESS if count else messages.WARNING,
        )
        if system:
            self.message_user(
                request,
                _(
                    "%(system)s failed system mails (double opt-in, preference links) are not "
                    "sent again from here: ask again from the contact, which sends a fresh "
                    "link."
                )
                % {"system": system},
                messages.WARNING,
            )


@admin.register(Message)
class MessageAdmin(WorkspaceScopedAdmin):
    list_display = ("name", "purpose", "channels", "updated_at")
    search_fields = ("name",)
    readonly_fields = ("progress", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "purpose", "progress")}),
        (gettext_lazy("Email"), {"fields": ("email_subject", "email_html", "email_text")}),
        (gettext_lazy("SMS"), {"fields": ("sms_text",)}),
        (
            gettext_lazy("Web push"),
            {"fields": ("push_title", "push_body", "push_url", "push_icon")},
        ),
        (gettext_lazy("WhatsApp"), {"fields": ("whatsapp_template", "whatsapp_language")}),
        (gettext_lazy("Times"), {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description=gettext_lazy("channels with content"))
    def channels(self, obj: Message) -> str:
        return ", ".join(obj.channels_ready()) or "-"

    @admin.display(description=gettext_lazy("deliveries by channel and status"))
    def progress(self, obj: Message) -> str:
        counts = (
            Delivery.objects.filter(message=obj)
            .values("channel", "status")
            .annotate(n=Count("id"))
            .order_by("channel", "status")
        )
        rows = [(c["channel"], DeliveryStatus(c["status"]).label, c["n"]) for c in counts]
        if not rows:
            return _("no deliveries yet")
        return format_html_join("", "<div>{}: {} {}</div>", rows)


@admin.register(ProviderReceipt)
class ProviderReceiptAdmin(WorkspaceScopedAdmin):
    """Install-level: every provider webhook request, for operators (delivery.view_providerreceipt
    on the user, never a workspace role). A receipt may carry no workspace, or name messages of
    several workspaces, so the list is not the session workspace's: it is the install's, shown
    only to whoever holds the install-wide right."""

    VIEW = "delivery.view_providerreceipt"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProviderReceipt]:
        return admin.ModelAdmin.get_queryset(self, request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(self.VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.has_perm(self.VIEW)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    list_display = ("created_at", "provider", "kind", "verdict", "status_code", "matched", "reason")
    list_filter = ("provider", "kind", "verdict")
    search_fields = ("reason", "body")
    readonly_fields = [f.name for f in ProviderReceipt._meta.fields]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


import delivery.credentials_admin  # noqa: E402, F401 - registers the owners' credentials page
