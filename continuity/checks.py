"""Secure by default: outside the sandbox, a missing or sandbox-valued secret is a deploy error.

These checks run with ``manage.py check --deploy`` (registered as deployment checks in
continuity/apps.py) and at every production start: ``manage.py preflight`` (and so
``manage.py run``) and the WSGI/ASGI entry points call ``start_refuse_if_insecure`` and stop with
the same messages. They only speak when DEBUG is off and the sandbox is off: the demo and the test
suite run on the sandbox's stand-in secrets on purpose.

Which provider secrets are required follows DELIVERY_INSTALL_CHANNELS, the channels the install
sends through accounts of its own. The keys that encrypt or sign (SOCIAL_TOKEN_KEYS,
OUTAGES_CREDENTIAL_KEY, CONTACTS_ERASURE_HASH_KEY) are always required.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, run_checks
from django.core.exceptions import ImproperlyConfigured

from continuity.sandbox_secrets import secret_is_sandbox_value

CHANNELS = ("email", "sms", "push", "whatsapp")
FERNET_HOWTO = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
RANDOM_HOWTO = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class InsecureStart(ImproperlyConfigured):
    """A production start with deploy errors: the message lists every one."""


def _checks_apply() -> bool:
    return not settings.DEBUG and not settings.SANDBOX_ENABLED


def _problem(
    *, name: str, value: str, needed_for: str, howto: str, check_id: str, secret: bool = True
) -> CheckMessage | None:
    """An Error for a secret; a Warning for an identifier (a sender number, a phone number id),
    which lets nobody forge or read anything but leaves the channel without a sender."""
    value = (value or "").strip()
    if value and not secret_is_sandbox_value(name, value):
        return None
    state = "holds the sandbox's stand-in value" if value else "is not set"
    level = Error if secret else Warning
    return level(
        f"{name} {state}: outside the sandbox (DEBUG and SANDBOX_ENABLED off) it is required "
        f"for {needed_for}, and nothing has a default there.",
        hint=f"Set the environment variable {name}: {howto}",
        id=check_id,
    )


def _channel_off_hint(channel: str) -> str:
    return (
        f" If the install has no {channel} account of its own (every workspace brings one, or "
        f"the channel is unused), leave {channel!r} out of DELIVERY_INSTALL_CHANNELS."
    )


def _email_problems() -> Iterable[CheckMessage | None]:
    off = _channel_off_hint("email")
    if "sendgrid" in str(settings.DELIVERY_EMAIL_BACKEND).lower():
        yield _problem(
            name="SENDGRID_API_KEY",
            value=str(settings.ANYMAIL.get("SENDGRID_API_KEY") or ""),
            needed_for="email through SendGrid",
            howto="an API key with Mail Send access (SendGrid: Settings > API Keys)." + off,
            check_id="continuity.E120",
        )
        yield _problem(
            name="SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
            value=str(settings.ANYMAIL.get("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY") or ""),
            needed_for="verifying SendGrid's signed event webhook",
            howto="the public key SendGrid shows when Signed Event Webhook Requests is enabled "
            "(Settings > Mail Settings > Event Webhook)." + off,
            check_id="continuity.E121",
        )
    if settings.DELIVERY_EMAIL_FAILOVER_BACKEND:
        yield _problem(
            name="DELIVERY_EMAIL_FAILOVER_API_KEY",
            value=str(settings.DELIVERY_EMAIL_FAILOVER_OPTIONS.get("api_key") or ""),
            needed_for="the failover ESP (DELIVERY_EMAIL_FAILOVER_BACKEND is set)",
            howto="the failover ESP's API key, or unset DELIVERY_EMAIL_FAILOVER_BACKEND.",
            check_id="continuity.E122",
        )


def _sms_problems() -> Iterable[CheckMessage | None]:
    off = _channel_off_hint("sms")
    yield _problem(
        name="TWILIO_ACCOUNT_SID",
        value=settings.TWILIO_ACCOUNT_SID,
        needed_for="SMS through Twilio",
        howto="the Account SID (AC...) from the Twilio Console's Account Info." + off,
        check_id="continuity.E110",
    )
    yield _problem(
        name="TWILIO_AUTH_TOKEN",
        value=settings.TWILIO_AUTH_TOKEN,
        needed_for="sending SMS and verifying Twilio's signed webhooks",
        howto="the account's Auth Token from the Twilio Console's Account Info." + off,
        check_id="continuity.E111",
    )
    if not settings.TWILIO_MESSAGING_SERVICE_SID:
        yield _problem(
            name="TWILIO_FROM_NUMBER",
            value=settings.TWILIO_FROM_NUMBER,
            needed_for="SMS through Twilio (no TWILIO_MESSAGING_SERVICE_SID is set)",
            howto="the account's sending number in E.164 (+1...), or set "
            "TWILIO_MESSAGING_SERVICE_SID (MG...) instead." + off,
            check_id="continuity.W112",
            secret=False,
        )


def _push_problems() -> Iterable[CheckMessage | None]:
    howto = "run `manage.py vapid_keys` and set both lines it prints." + _channel_off_hint("push")
    yield _problem(
        name="VAPID_PRIVATE_KEY",
        value=settings.VAPID_PRIVATE_KEY,
        needed_for="signing web pushes (VAPID)",
        howto=howto,
        check_id="continuity.E130",
    )
    yield _problem(
        name="VAPID_PUBLIC_KEY",
        value=settings.VAPID_PUBLIC_KEY,
        needed_for="the key browsers subscribe with (applicationServerKey)",
        howto=howto,
        check_id="continuity.E131",
    )


def _whatsapp_problems() -> Iterable[CheckMessage | None]:
    off = _channel_off_hint("whatsapp")
    yield _problem(
        name="WHATSAPP_PHONE_NUMBER_ID",
        value=settings.WHATSAPP_PHONE_NUMBER_ID,
        needed_for="WhatsApp sends through the install's number",
        howto="the phone number ID from Meta's WhatsApp Manager (API Setup)." + off,
        check_id="continuity.W140",
        secret=False,
    )
    yield _problem(
        name="WHATSAPP_ACCESS_TOKEN",
        value=settings.WHATSAPP_ACCESS_TOKEN,
        needed_for="WhatsApp sends through the install's number",
        howto="a System User access token with whatsapp_business_messaging." + off,
        check_id="continuity.E141",
    )


CHANNEL_PROBLEMS = {
    "email": _email_problems,
    "sms": _sms_problems,
    "push": _push_problems,
    "whatsapp": _whatsapp_problems,
}


def _fernet_problems() -> Iterable[CheckMessage | None]:
    keys = [k.strip() for k in settings.SOCIAL_TOKEN_KEYS if k.strip()]
    if not keys:
        yield Error(
            "SOCIAL_TOKEN_KEYS is not set: stored provider credentials and social access "
            "tokens are encrypted with it, and outside the sandbox there is no default.",
            hint=f"Set SOCIAL_TOKEN_KEYS to a Fernet key (newest first, comma-separated): "
            f"{FERNET_HOWTO}",
            id="continuity.E150",
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            yield Error(
                f"SOCIAL_TOKEN_KEYS entry {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes).",
                hint=f"Generate one with: {FERNET_HOWTO}",
                id="continuity.E151",
            )


def _key_problems() -> Iterable[CheckMessage | None]:
    yield _problem(
        name="OUTAGES_CREDENTIAL_KEY",
        value=settings.OUTAGES_CREDENTIAL_KEY,
        needed_for="encrypting monitor source secrets",
        howto=f"a long random value of its own, not SECRET_KEY ({RANDOM_HOWTO}). An install "
        "whose sources were encrypted under SECRET_KEY keeps reading them (SECRET_KEY and its "
        "fallbacks are tried); run `manage.py secrets_rotate` after setting it.",
        check_id="continuity.E160",
    )
    yield _problem(
        name="CONTACTS_ERASURE_HASH_KEY",
        value=settings.CONTACTS_ERASURE_HASH_KEY,
        needed_for="the keyed hashes erased contacts' evidence and suppressions keep",
        howto=f"a long random value of its own, kept for as long as erased evidence is "
        f"({RANDOM_HOWTO}). Hashes made under SECRET_KEY before still match while that "
        "SECRET_KEY is SECRET_KEY or in SECRET_KEY_FALLBACKS.",
        check_id="continuity.E170",
    )
    erasure = settings.CONTACTS_ERASURE_HASH_KEY
    if erasure and erasure in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        yield Warning(
            "CONTACTS_ERASURE_HASH_KEY is SECRET_KEY (or one of its fallbacks): rotating "
            "SECRET_KEY would then take the erasure key with it.",
            hint="Give CONTACTS_ERASURE_HASH_KEY a value of its own and put the current one "
            "in CONTACTS_ERASURE_HASH_KEY_FALLBACKS.",
            id="continuity.W171",
        )


def _weak(key: str) -> bool:
    # Django's own rule for SECRET_KEY (security.W009): at least 50 characters, 5 different ones.
    return len(key) < 50 or len(set(key)) < 5


def _link_key_problems() -> Iterable[CheckMessage | None]:
    """The link key's presence is enforced as settings load; here, that it is strong and its
    own. A shared key would let a SECRET_KEY rotation (or leak) take every link with it."""
    key = settings.CONTACTS_LINK_SIGNING_KEY
    fallbacks = list(settings.CONTACTS_LINK_SIGNING_KEY_FALLBACKS)
    if _weak(key):
        yield Error(
            "CONTACTS_LINK_SIGNING_KEY is too weak: fewer than 50 characters or fewer than 5 "
            "different ones. It signs every unsubscribe and preference link.",
            hint=f"Set a long random value ({RANDOM_HOWTO}) and list the current one in "
            "CONTACTS_LINK_SIGNING_KEY_FALLBACKS so links already sent keep working.",
            id="continuity.E180",
        )
    if key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        yield Error(
            "CONTACTS_LINK_SIGNING_KEY is SECRET_KEY (or one of its fallbacks): rotating "
            "SECRET_KEY would then break every link already sent.",
            hint="Give CONTACTS_LINK_SIGNING_KEY a value of its own and put the current one in "
            "CONTACTS_LINK_SIGNING_KEY_FALLBACKS (docs/contacts.md, key rotation).",
            id="continuity.E181",
        )
    if key in fallbacks or any(_weak(old) for old in fallbacks):
        yield Warning(
            "CONTACTS_LINK_SIGNING_KEY_FALLBACKS repeats the current key or holds a weak one.",
            hint="List only retired keys, each as strong as the current one.",
            id="continuity.W182",
        )


def secrets_check(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Deployment check: every secret an enabled channel or stored data needs is set, and none
    holds a sandbox stand-in, when DEBUG and the sandbox are off."""
    if settings.SANDBOX_ENABLED and not settings.DEBUG:
        return [
            Warning(
                "SANDBOX_ENABLED is on with DEBUG off: provider secrets default to the "
                "sandbox's stand-ins and provider URLs to its loopback fakes.",
                hint="Production sets SANDBOX_ENABLED=false (its default when DEBUG is off).",
                id="continuity.W100",
            )
        ]
    if not _checks_apply():
        return []
    found: list[CheckMessage | None] = []
    unknown = sorted(set(settings.DELIVERY_INSTALL_CHANNELS) - set(CHANNELS))
    if unknown:
        found.append(
            Error(
                f"DELIVERY_INSTALL_CHANNELS names unknown channels: {', '.join(unknown)}.",
                hint=f"Use a comma-separated subset of: {', '.join(CHANNELS)}.",
                id="continuity.E101",
            )
        )
    for channel in CHANNELS:
        if channel in settings.DELIVERY_INSTALL_CHANNELS:
            found.extend(CHANNEL_PROBLEMS[channel]())
    found.extend(_fernet_problems())
    found.extend(_key_problems())
    found.extend(_link_key_problems())
    return [message for message in found if message is not None]


def start_problems() -> list[CheckMessage]:
    """What ``check --deploy`` would fail on (errors, not silenced): the refusals of a
    production start. Empty with DEBUG on, where ``runserver`` runs its own checks."""
    if settings.DEBUG:
        return []
    return [
        message
        for message in run_checks(include_deployment_checks=True)
        if message.is_serious() and not message.is_silenced()
    ]


def start_refuse_if_insecure() -> None:
    """Stop a production start (WSGI/ASGI import, preflight) with every deploy error."""
    problems = start_problems()
    if problems:
        lines = "\n".join(f"- {message}" for message in problems)
        raise InsecureStart(
            f"refusing to start: `manage.py check --deploy` finds {len(problems)} error(s):\n"
            f'{lines}\n(docs/configuration.md, "Secrets and rotation", lists every secret.)'
        )
