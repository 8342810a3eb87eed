"""A workspace's own provider credentials: stored encrypted, changed with an audit row, resolved
per batch at send time, and looked up by the webhooks that must verify with them.

Fallback, per provider: a workspace that sets its own SendGrid key, Twilio account (SID and auth
token together), VAPID key pair or WhatsApp number (id and token together) sends through it;
otherwise the install's settings are used (the sandbox in the demo). Sender identity (from email
and name, VAPID subject) falls back field by field. A Twilio sender (messaging service or from
number) never falls back across accounts: the install's number belongs to the install's account.

Plain secrets live only for one batch: ``channel_content`` reads the row once per message batch
and decrypts only the channel's secret. Nothing is cached across batches, so a change (or a
rotation) is seen by the next batch of every worker, with no invalidation to forget.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from continuity.audit import audit_record
from continuity.models import Workspace
from continuity.sandbox_secrets import secret_is_sandbox_value
from continuity.tenancy import Access
from delivery.models import WorkspaceCredentials
from delivery.providers.base import SendGridAccount, TwilioAccount, VapidKeys
from delivery.secrets import (
    TokenDecryptError,
    token_decrypt,
    token_encrypt,
    token_is_current,
    token_reencrypt,
)

logger = logging.getLogger(__name__)

# The secret fields of WorkspaceCredentials: name -> column holding its ciphertext.
SECRET_FIELDS: Mapping[str, str] = {
    name: f"{name}_encrypted"
    for name in (
        "sendgrid_api_key",
        "twilio_auth_token",
        "vapid_private_key",
        "whatsapp_access_token",
        "whatsapp_app_secret",
    )
}
# The readable fields an owner may set.
PLAIN_FIELDS: tuple[str, ...] = (
    "sendgrid_from_email",
    "sendgrid_from_name",
    "sendgrid_webhook_verification_key",
    "twilio_account_sid",
    "twilio_messaging_service_sid",
    "twilio_from_number",
    "vapid_public_key",
    "vapid_subject",
    "whatsapp_phone_number_id",
)
# Every column of the install that holds delivery.secrets ciphertext, by lazy model label:
# delivery never imports campaigns, so its model is looked up through the app registry.
# (outages.MonitorCredential has keys of its own, OUTAGES_CREDENTIAL_KEY and its fallbacks: its
# rotation is one of SECRETS_ROTATE_HOOKS, which ``secrets_rotate`` calls after these.)
ENCRYPTED_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("delivery.WorkspaceCredentials", tuple(SECRET_FIELDS.values())),
    ("campaigns.SocialAccount", ("access_token_encrypted",)),
)
# A hint shows the last 4 characters only of a secret long enough for 4 to give nothing away.
HINT_MIN_LENGTH = 16


class CredentialsUnreadable(Exception):
    """A workspace's stored secret that no configured key opens."""


def secret_hint(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) >= HINT_MIN_LENGTH else ""


# --- reading (send time, webhooks) --------------------------------------------------------------


def credentials_row(*, workspace_id: int) -> WorkspaceCredentials | None:
    return WorkspaceCredentials.objects.filter(workspace_id=workspace_id).first()


def _secret(row: WorkspaceCredentials, name: str) -> str:
    ciphertext = getattr(row, SECRET_FIELDS[name])
    if not ciphertext:
        return ""
    try:
        return token_decrypt(ciphertext=ciphertext)
    except TokenDecryptError as exc:
        logger.error(
            "workspace %s: stored %s cannot be decrypted",
            row.workspace_id,
            name,
            extra={"workspace_id": row.workspace_id},
        )
        raise CredentialsUnreadable(
            f"workspace #{row.workspace_id}: the stored {name} cannot be decrypted with the "
            "configured keys (restore the old key in SOCIAL_TOKEN_KEYS or set the secret again)"
        ) from exc


def sendgrid_account(row: WorkspaceCredentials | None) -> SendGridAccount | None:
    if row is None or not row.sendgrid_api_key_encrypted:
        return None
    return SendGridAccount(api_key=_secret(row, "sendgrid_api_key"))


def email_from(row: WorkspaceCredentials | None) -> str:
    """The sender for the workspace's email ("" : the install's DELIVERY_EMAIL_FROM)."""
    if row is None or not row.sendgrid_from_email:
        return ""
    if row.sendgrid_from_name:
        from email.utils import formataddr

        return formataddr((row.sendgrid_from_name, row.sendgrid_from_email))
    return row.sendgrid_from_email


def twilio_account(row: WorkspaceCredentials | None) -> TwilioAccount | None:
    if row is None or not (row.twilio_account_sid and row.twilio_auth_token_encrypted):
        return None
    return TwilioAccount(
        account_sid=row.twilio_account_sid,
        auth_token=_secret(row, "twilio_auth_token"),
        messaging_service_sid=row.twilio_messaging_service_sid,
        from_number=row.twilio_from_number,
    )


def workspaces_texting_from(*, account_sid: str, workspace_id: int | None) -> list[int]:
    """The workspaces whose contacts text the numbers of this Twilio account: the one workspace
    that brought it, or, for the install's account, every workspace without one of its own. An
    inbound keyword speaks for these contacts only."""
    with_sid = WorkspaceCredentials.objects.exclude(twilio_account_sid="")
    own = with_sid.exclude(twilio_auth_token_encrypted="")  # an empty column  # nosec B106
    if workspace_id is not None:
        mine = own.filter(workspace_id=workspace_id)
        # Without an AccountSid the request was verified with the workspace's own token.
        if account_sid:
            mine = mine.filter(twilio_account_sid=account_sid)
        if mine.exists():
            return [workspace_id]
    return list(
        Workspace.objects.exclude(pk__in=own.values("workspace_id")).values_list("pk", flat=True)
    )


def vapid_keys(row: WorkspaceCredentials | None) -> VapidKeys | None:
    if row is None or not (row.vapid_private_key_encrypted and row.vapid_public_key):
        return None
    return VapidKeys(
        private_key=_secret(row, "vapid_private_key"),
        public_key=row.vapid_public_key,
        subject=row.vapid_subject or settings.VAPID_SUBJECT,
    )


def whatsapp_number(row: WorkspaceCredentials | None) -> tuple[str, str] | None:
    """(phone number id, access token) of the workspace's own WhatsApp number, if it has one."""
    if row is None or not (row.whatsapp_phone_number_id and row.whatsapp_access_token_encrypted):
        return None
    return row.whatsapp_phone_number_id, _secret(row, "whatsapp_access_token")


def workspace_vapid_public_key(*, workspace_id: int) -> str:
    """The applicationServerKey a workspace's subscribe page must offer (its own, or the
    install's): a subscription only accepts pushes signed with the key it was made with."""
    row = credentials_row(workspace_id=workspace_id)
    if row is not None and row.vapid_public_key and row.vapid_private_key_encrypted:
        return row.vapid_public_key
    return str(settings.VAPID_PUBLIC_KEY)


@dataclass(frozen=True)
class WebhookSecrets:
    """What a provider webhook for one workspace is verified with. A ``*_refusal`` says why that
    provider's secret must not verify anything (empty: it may)."""

    twilio_account_sid: str
    twilio_auth_token: str = field(repr=False)
    sendgrid_verification_key: str
    own_twilio: bool
    own_sendgrid: bool
    twilio_refusal: str = ""
    sendgrid_refusal: str = ""


def webhook_secret_refusal(*, name: str, value: str, own: bool) -> str:
    """Why a verifying secret cannot be used: missing (an empty HMAC key is one anyone can sign
    with), or the sandbox's stand-in outside the sandbox (it is in the source). "" when usable."""
    whose = "the workspace's own" if own else "the install's"
    if not value.strip():
        return (
            f"webhook verification is not configured: {whose} {name} is not set; refusing "
            "to accept an unverifiable request"
        )
    if not settings.SANDBOX_ENABLED and secret_is_sandbox_value(name, value):
        return (
            f"webhook verification is not configured: {whose} {name} holds the sandbox's "
            "stand-in value outside the sandbox; refusing to verify with it"
        )
    return ""


def _with_refusals(found: WebhookSecrets) -> WebhookSecrets:
    return dataclasses.replace(
        found,
        twilio_refusal=webhook_secret_refusal(
            name="TWILIO_AUTH_TOKEN", value=found.twilio_auth_token, own=found.own_twilio
        ),
        sendgrid_refusal=webhook_secret_refusal(
            name="SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
            value=found.sendgrid_verification_key,
            own=found.own_sendgrid,
        ),
    )


def webhook_secrets(*, workspace_id: int | None) -> WebhookSecrets | None:
    """The workspace's webhook secrets with the install's as fallback; None for no such
    workspace. ``workspace_id`` None: the install's (the URLs without a workspace)."""
    install = WebhookSecrets(
        twilio_account_sid=settings.TWILIO_ACCOUNT_SID,
        twilio_auth_token=settings.TWILIO_AUTH_TOKEN,
        sendgrid_verification_key=str(
            settings.ANYMAIL.get("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY") or ""
        ),
        own_twilio=False,
        own_sendgrid=False,
    )
    if workspace_id is None:
        return _with_refusals(install)
    row = credentials_row(workspace_id=workspace_id)
    # One query for a workspace with credentials; a second only to tell "none set" from "no
    # such workspace".
    if row is None and not Workspace.objects.filter(pk=workspace_id).exists():
        return None
    account = twilio_account(row)
    own_key = row.sendgrid_webhook_verification_key if row is not None else ""
    return _with_refusals(
        WebhookSecrets(
            twilio_account_sid=account.account_sid if account else install.twilio_account_sid,
            twilio_auth_token=account.auth_token if account else install.twilio_auth_token,
            sendgrid_verification_key=own_key or install.sendgrid_verification_key,
            own_twilio=account is not None,
            own_sendgrid=bool(own_key),
        )
    )


# --- changing (the owners' admin page) ----------------------------------------------------------


@dataclass(frozen=True)
class CredentialsChange:
    """What an owner submitted: plain fields as typed; secrets only when a new one was typed
    (None: keep the stored one); ``clear`` names secrets to remove."""

    plain: Mapping[str, str]
    secrets: Mapping[str, str | None]
    clear: frozenset[str] = frozenset()


def workspace_credentials_update(
    *, access: Access, workspace: Workspace, change: CredentialsChange
) -> tuple[WorkspaceCredentials, list[str]]:
    """Apply an owner's change in one transaction with its audit row ("credentials.change",
    naming the fields that changed, never a value). Returns the row and the changed fields."""
    access.require("continuity.manage_credentials")
    with transaction.atomic():
        row, _created = WorkspaceCredentials.objects.select_for_update().get_or_create(
            workspace=workspace
        )
        changed: list[str] = []
        for name in PLAIN_FIELDS:
            if name in change.plain:
                value = change.plain[name].strip()
                if getattr(row, name) != value:
                    setattr(row, name, value)
                    changed.append(name)
        hints: dict[str, Any] = dict(row.hints or {})
        for name, column in SECRET_FIELDS.items():
            new = (change.secrets.get(name) or "").strip()
            if new:
                # A new secret always counts as a change: its ciphertext cannot be compared.
                setattr(row, column, token_encrypt(plaintext=new))
                hints[name] = secret_hint(new)
                changed.append(name)
            elif name in change.clear and getattr(row, column):
                setattr(row, column, "")
                hints.pop(name, None)
                changed.append(name)
        if changed:
            row.hints = hints
            row.save()
            audit_record(
                access=access,
                action="credentials.change",
                target=row,
                detail={"fields": sorted(changed)},
            )
    return row, changed


# --- rotation -----------------------------------------------------------------------------------


@dataclass
class RotationReport:
    """Counts per "app.Model.column": re-encrypted, already under the newest key, unreadable."""

    reencrypted: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)

    def add(self, bucket: dict[str, int], name: str) -> None:
        bucket[name] = bucket.get(name, 0) + 1


def secrets_rotate(*, batch_size: int = 500) -> RotationReport:
    """Re-encrypt every stored secret with the newest key: SOCIAL_TOKEN_KEYS' for the columns
    above, then each SECRETS_ROTATE_HOOKS function for secrets with keys of their own.

    Idempotent: a value the newest key already opens is left alone, so a second run changes
    nothing. Each value is swapped only if it is still the one read (a concurrent change by an
    owner wins), and the old keys keep opening whatever has not been rotated yet, so sending
    continues while this runs. Unreadable values are counted, never dropped.
    """
    report = RotationReport()
    for label, columns in ENCRYPTED_COLUMNS:
        try:
            model: type[models.Model] = apps.get_model(label)
        except LookupError:
            continue
        for column in columns:
            name = f"{label}.{column}"
            report.reencrypted.setdefault(name, 0)
            report.current.setdefault(name, 0)
            rows = (
                model._default_manager.exclude(**{column: ""})
                .order_by("pk")
                .values_list("pk", column)
            )
            for pk, ciphertext in rows.iterator(chunk_size=batch_size):
                if token_is_current(ciphertext=ciphertext):
                    report.add(report.current, name)
                    continue
                try:
                    rotated = token_reencrypt(ciphertext=ciphertext)
                except TokenDecryptError:
                    report.add(report.unreadable, name)
                    continue
                # .update(): no save() side effects and no updated_at bump; the WHERE on the old
                # ciphertext makes a concurrent change win over the rotation.
                model._default_manager.filter(pk=pk, **{column: ciphertext}).update(
                    **{column: rotated}
                )
                report.add(report.reencrypted, name)
    for path in settings.SECRETS_ROTATE_HOOKS:
        # A hook answers {column: (re-encrypted, already current, unreadable)}; delivery names
        # it by dotted path because it never imports the apps that own those secrets.
        rotate: Callable[..., Mapping[str, tuple[int, int, int]]] = import_string(path)
        for name, (moved, current, unreadable) in rotate(batch_size=batch_size).items():
            report.reencrypted[name] = report.reencrypted.get(name, 0) + moved
            report.current[name] = report.current.get(name, 0) + current
            if unreadable:
                report.unreadable[name] = report.unreadable.get(name, 0) + unreadable
    return report


def credentials_status(row: WorkspaceCredentials | None) -> dict[str, str]:
    """For display: each secret as "set …abcd" / "set" / "not set"; never the secret."""
    status: dict[str, str] = {}
    for name, column in SECRET_FIELDS.items():
        if row is not None and getattr(row, column):
            hint = (row.hints or {}).get(name, "")
            status[name] = _("set %(hint)s") % {"hint": hint} if hint else _("set")
        else:
            status[name] = _("not set")
    return status


def whatsapp_app_secrets(*, phone_number_ids: Iterable[str]) -> set[str]:
    """The app secrets that may have signed a status notification naming these phone number
    ids: each workspace's own Meta app secret where it set one, else the install's
    (WHATSAPP_APP_SECRET, also for numbers no workspace holds). Meta signs each app's
    notifications apart, so a notification is verified with exactly one of them. An empty string
    stands for "no secret configured"; CredentialsUnreadable when a stored one cannot be read."""
    ids = {str(i)[:100] for i in phone_number_ids if i}
    found: set[str] = set()
    known: set[str] = set()
    rows = WorkspaceCredentials.objects.filter(whatsapp_phone_number_id__in=ids) if ids else []
    for row in rows:
        known.add(row.whatsapp_phone_number_id)
        found.add(_secret(row, "whatsapp_app_secret") or settings.WHATSAPP_APP_SECRET)
    if not ids or ids - known:
        found.add(settings.WHATSAPP_APP_SECRET)
    return found
