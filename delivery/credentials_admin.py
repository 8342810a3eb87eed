"""The owners' page for their workspace's provider credentials: one form, secrets write-only.

The page is the model's changelist URL and shows the session's workspace only. Secrets are
never rendered, not even masked: each shows "set …abcd" (the last 4 characters of a long secret,
at most) or "not set", an empty password box to replace it and a box to remove it. Reading and
changing need ``continuity.manage_credentials`` (owners); every refusal is audited, every change
is audited with the names of the fields that changed, never their values.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from continuity.admin_access import WorkspaceScopedAdmin, request_access
from continuity.audit import audit_denied
from continuity.tenancy import Access, MissingPermission
from delivery.credentials import (
    PLAIN_FIELDS,
    SECRET_FIELDS,
    CredentialsChange,
    credentials_row,
    credentials_status,
    workspace_credentials_update,
)
from delivery.models import WorkspaceCredentials

PERM = "continuity.manage_credentials"
SECRET_MAX = 4096
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_DIGITS = re.compile(r"^[0-9]{1,40}$")
# Line breaks and tabs pass (a PEM key has them); other control characters do not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

SECRET_LABELS = {
    "sendgrid_api_key": gettext_lazy("SendGrid API key"),
    "twilio_auth_token": gettext_lazy("Twilio auth token"),
    "vapid_private_key": gettext_lazy("VAPID private key"),
    "whatsapp_access_token": gettext_lazy("WhatsApp access token"),
    "whatsapp_app_secret": gettext_lazy("Meta app secret (signs WhatsApp status webhooks)"),
}
# Whole sentences per secret (never a translated fragment glued into another).
NEW_LABELS = {
    "sendgrid_api_key": gettext_lazy("New SendGrid API key"),
    "twilio_auth_token": gettext_lazy("New Twilio auth token"),
    "vapid_private_key": gettext_lazy("New VAPID private key"),
    "whatsapp_access_token": gettext_lazy("New WhatsApp access token"),
    "whatsapp_app_secret": gettext_lazy("New Meta app secret"),
}
CLEAR_LABELS = {
    "sendgrid_api_key": gettext_lazy("Remove the stored SendGrid API key"),
    "twilio_auth_token": gettext_lazy("Remove the stored Twilio auth token"),
    "vapid_private_key": gettext_lazy("Remove the stored VAPID private key"),
    "whatsapp_access_token": gettext_lazy("Remove the stored WhatsApp access token"),
    "whatsapp_app_secret": gettext_lazy("Remove the stored Meta app secret"),
}
SECTIONS = (
    (
        gettext_lazy("Email (SendGrid)"),
        "sendgrid_api_key",
        ("sendgrid_from_email", "sendgrid_from_name", "sendgrid_webhook_verification_key"),
    ),
    (
        gettext_lazy("SMS (Twilio)"),
        "twilio_auth_token",
        ("twilio_account_sid", "twilio_messaging_service_sid", "twilio_from_number"),
    ),
    (gettext_lazy("Web push (VAPID)"), "vapid_private_key", ("vapid_public_key", "vapid_subject")),
    (gettext_lazy("WhatsApp"), "whatsapp_access_token", ("whatsapp_phone_number_id",)),
    # Only when the number belongs to a Meta app of the workspace's own (the install's app
    # signs the others' status webhooks).
    (gettext_lazy("WhatsApp status webhooks (your own Meta app)"), "whatsapp_app_secret", ()),
)


class CredentialsForm(forms.ModelForm):
    """The readable fields as model fields; per secret a write-only box and a remove box."""

    class Meta:
        model = WorkspaceCredentials
        fields = PLAIN_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_LABELS:
            self.fields[f"new_{name}"] = forms.CharField(
                label=NEW_LABELS[name],
                required=False,
                max_length=SECRET_MAX,
                strip=True,
                # Never rendered back, not even after a validation error.
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                help_text=_("Leave empty to keep the stored one."),
            )
            self.fields[f"clear_{name}"] = forms.BooleanField(
                label=CLEAR_LABELS[name], required=False
            )
        self.fields["vapid_public_key"].help_text = _(
            "Derived from the private key when left empty."
        )
        self.fields["new_vapid_private_key"].help_text = _(
            "The VAPID_PRIVATE_KEY line printed by manage.py vapid_keys. Leave empty to keep "
            "the stored one."
        )
        self.fields["sendgrid_webhook_verification_key"].widget = forms.Textarea(attrs={"rows": 3})

    def _has(self, name: str) -> bool:
        """Whether the secret will be set after this change."""
        if self.cleaned_data.get(f"new_{name}"):
            return True
        if self.cleaned_data.get(f"clear_{name}"):
            return False
        return bool(getattr(self.instance, SECRET_FIELDS[name], ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in SECRET_LABELS:
            value = data.get(f"new_{name}") or ""
            if _CONTROL.search(value):
                self.add_error(f"new_{name}", _("Control characters are not allowed."))
        sid = (data.get("twilio_account_sid") or "").strip()
        if sid and not _ACCOUNT_SID.match(sid):
            self.add_error("twilio_account_sid", _("A Twilio account SID is AC and 32 hex digits."))
        service = (data.get("twilio_messaging_service_sid") or "").strip()
        if service and not _SERVICE_SID.match(service):
            self.add_error(
                "twilio_messaging_service_sid",
                _("A messaging service SID is MG and 32 hex digits."),
            )
        number = (data.get("twilio_from_number") or "").strip()
        if number and not _E164.match(number):
            self.add_error("twilio_from_number", _("Use the E.164 form, such as +15005550006."))
        if bool(sid) != self._has("twilio_auth_token"):
            self.add_error(
                "twilio_account_sid",
                _("A Twilio account needs both its SID and its auth token (or neither)."),
            )
        elif sid and not (service or number):
            self.add_error(
                "twilio_from_number",
                _("Your Twilio account needs a messaging service SID or a from number."),
            )
        if self._has("sendgrid_api_key") and not (data.get("sendgrid_from_email") or "").strip():
            self.add_error(
                "sendgrid_from_email",
                _("Your SendGrid account needs a sender email verified in that account."),
            )
        self._clean_vapid(data)
        phone_id = (data.get("whatsapp_phone_number_id") or "").strip()
        if phone_id and not _DIGITS.match(phone_id):
            self.add_error("whatsapp_phone_number_id", _("A phone number id is digits only."))
        if bool(phone_id) != self._has("whatsapp_access_token"):
            self.add_error(
                "whatsapp_phone_number_id",
                _("A WhatsApp number needs both its phone number id and its access token."),
            )
        elif self._has("whatsapp_app_secret") and not phone_id:
            self.add_error(
                "new_whatsapp_app_secret",
                _(
                    "A Meta app secret verifies the webhooks of your WhatsApp number: set the "
                    "number first."
                ),
            )
        key = "".join((data.get("sendgrid_webhook_verification_key") or "").split())
        data["sendgrid_webhook_verification_key"] = key
        if key and not _ec_public_key_ok(key):
            self.add_error(
                "sendgrid_webhook_verification_key",
                _("Paste the verification key SendGrid shows (base64, an EC public key)."),
            )
        return data

    def _clean_vapid(self, data: dict[str, Any]) -> None:
        from delivery.providers.webpush import vapid_key_load, vapid_public_key

        subject = (data.get("vapid_subject") or "").strip()
        if subject and not subject.startswith(("mailto:", "https:")):
            self.add_error("vapid_subject", _("The subject is a mailto: or https: URL."))
        public = (data.get("vapid_public_key") or "").strip()
        new_private = data.get("new_vapid_private_key") or ""
        if new_private:
            try:
                derived = vapid_public_key(vapid_key_load(private_key=new_private))
            except Exception:  # py_vapid raises a variety of errors for a bad key
                self.add_error("new_vapid_private_key", _("This is not a VAPID private key."))
                return
            if public and public != derived:
                self.add_error("vapid_public_key", _("This public key is not the private key's."))
                return
            data["vapid_public_key"] = derived
        elif public and not self._has("vapid_private_key"):
            self.add_error("vapid_public_key", _("A VAPID public key needs its private key."))
        elif self.cleaned_data.get("clear_vapid_private_key"):
            data["vapid_public_key"] = ""

    def change(self) -> CredentialsChange:
        data = self.cleaned_data
        return CredentialsChange(
            plain={name: str(data.get(name) or "") for name in PLAIN_FIELDS},
            secrets={name: data.get(f"new_{name}") or None for name in SECRET_FIELDS},
            clear=frozenset(name for name in SECRET_FIELDS if data.get(f"clear_{name}")),
        )


def _ec_public_key_ok(key: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        loaded = load_der_public_key(base64.b64decode(key, validate=True))
    except (ValueError, TypeError, binascii.Error):
        return False
    return isinstance(loaded, ec.EllipticCurvePublicKey)


class WorkspaceCredentialsAdmin(WorkspaceScopedAdmin):
    """One page per workspace instead of a list: the changelist URL is the credentials form."""

    def _allowed(self, request: HttpRequest) -> bool:
        access = request_access(request)
        return access.workspace is not None and access.has(PERM)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "",
                self.admin_site.admin_view(self.credentials_view),
                name="{}_{}_changelist".format(*info),
            ),
        ]

    def _require(self, request: HttpRequest, action: str) -> Access:
        access = request_access(request)
        access.workspace_required  # noqa: B018 - raises PermissionDenied without a workspace
        if not access.has(PERM):
            # The refusal commits on its own: the refused request changes nothing else.
            audit_denied(access=access, action=action, perm=PERM)
            raise MissingPermission(PERM)
        return access

    def credentials_view(self, request: HttpRequest) -> HttpResponse:
        action = "credentials.view" if request.method in ("GET", "HEAD") else "credentials.change"
        if request.method not in ("GET", "HEAD", "POST"):
            raise PermissionDenied
        access = self._require(request, action)
        workspace = access.workspace_required
        row = credentials_row(workspace_id=workspace.pk) or WorkspaceCredentials(
            workspace=workspace
        )
        form = CredentialsForm(request.POST or None, instance=row)
        if request.method == "POST" and form.is_valid():
            _row, changed = workspace_credentials_update(
                access=access, workspace=workspace, change=form.change()
            )
            if changed:
                self.message_user(
                    request,
                    _("Saved: %(fields)s.") % {"fields": ", ".join(sorted(changed))},
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, _("Nothing changed."), messages.INFO)
            return HttpResponseRedirect(request.path)
        status = credentials_status(row if row.pk else None)
        sections = [
            {
                "title": title,
                "secret_label": SECRET_LABELS[secret],
                "secret_status": status[secret],
                "secret_field": form[f"new_{secret}"],
                "clear_field": form[f"clear_{secret}"],
                "fields": [form[name] for name in plain],
            }
            for title, secret, plain in SECTIONS
        ]
        public = settings.DELIVERY_PUBLIC_BASE_URL.rstrip("/")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Provider credentials of %(workspace)s") % {"workspace": workspace.name},
            "form": form,
            "sections": sections,
            "webhook_urls": [
                (
                    _("SendGrid event webhook"),
                    public + reverse("delivery:sendgrid-events-workspace", args=[workspace.pk]),
                ),
                (
                    _("Twilio inbound messages"),
                    public + reverse("delivery:twilio-inbound-workspace", args=[workspace.pk]),
                ),
                (
                    _("Twilio status callbacks (set on each message)"),
                    public + reverse("delivery:twilio-status-workspace", args=[workspace.pk]),
                ),
            ],
        }
        return TemplateResponse(
            request, "admin/delivery/workspacecredentials/credentials.html", context
        )


admin.site.register(WorkspaceCredentials, WorkspaceCredentialsAdmin)
