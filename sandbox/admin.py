"""The inbox admin: what each loopback fake received, and its fault buttons.

The sandbox has no models, so these are plain admin views (sandbox/urls.py) rather than a
ModelAdmin. They sit beside the Delivery admin and need its permissions: viewing deliveries to
read the inbox, changing them to switch a fake's fault mode.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from delivery.models import Delivery
from sandbox.inbox import (
    INBOX_FAULT_MODES,
    SandboxControlError,
    sandbox_endpoints,
    sandbox_fault_set,
    sandbox_inboxes_read,
)

VIEW_PERMISSION = "delivery.view_delivery"
CHANGE_PERMISSION = "delivery.change_delivery"
PER_PAGE = 20


def sandbox_inbox_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    names = [e.name for e in sandbox_endpoints()]
    selected = request.GET.get("fake", "")
    selected = selected if selected in names else names[0]
    page = request.GET.get("page", "1")
    page_number = int(page) if page.isdigit() and len(page) < 7 else 1
    inboxes = sandbox_inboxes_read(
        selected=selected, offset=(max(page_number, 1) - 1) * PER_PAGE, limit=PER_PAGE
    )
    current = next(i for i in inboxes if i.endpoint.name == selected)
    pages = max((current.count + PER_PAGE - 1) // PER_PAGE, 1)
    context = {
        **admin.site.each_context(request),
        "opts": Delivery._meta,
        "title": _("Sandbox inbox"),
        "inboxes": inboxes,
        "current": current,
        "page": max(page_number, 1),
        "pages": pages,
        "previous_page": page_number - 1 if page_number > 1 else None,
        "next_page": page_number + 1 if page_number < pages else None,
        "fault_modes": INBOX_FAULT_MODES,
        "can_change": request.user.has_perm(CHANGE_PERMISSION),
    }
    return TemplateResponse(request, "admin/sandbox/inbox.html", context)


def sandbox_fault_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    try:
        said = sandbox_fault_set(
            name=request.POST.get("fake", ""), mode=request.POST.get("mode", "")
        )
    except SandboxControlError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, said)
    return HttpResponseRedirect(reverse("sandbox:inbox"))
