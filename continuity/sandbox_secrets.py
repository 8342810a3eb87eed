"""The stand-in provider secrets of the sandbox, in one place.

Settings use them as defaults only while the sandbox is on; the deploy checks
(continuity/checks.py) and the webhooks (delivery/credentials.py) use them to recognise a sandbox
value that reached a real install, where it would let anyone who read this file sign a webhook.
No Django import here: settings import this module before Django is configured.
"""

from __future__ import annotations

from collections.abc import Mapping

# Values the loopback fakes in sandbox/ accept. The Twilio ones are Twilio's own test-credential
# shapes (an all-zero account SID, the magic "valid" from number), never a real account's. They
# are public on purpose: outside the sandbox each is refused (continuity/checks.py).
_TWILIO_STAND_IN = "sandbox-twilio-token"
_WHATSAPP_STAND_IN = "sandbox-whatsapp-token"
SANDBOX_SECRETS: Mapping[str, str] = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": _TWILIO_STAND_IN,
    "TWILIO_FROM_NUMBER": "+15005550006",
    "SENDGRID_API_KEY": "sandbox-sendgrid-key",
    "DELIVERY_EMAIL_FAILOVER_API_KEY": "sandbox-failover-key",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "WHATSAPP_ACCESS_TOKEN": _WHATSAPP_STAND_IN,
}
# Every stand-in the sandbox and its demo hand out starts with this (the demo's social tokens
# are "sandbox-<network>-token"); no provider issues secrets that look like it.
SANDBOX_PREFIX = "sandbox-"


def sandbox_default(name: str, *, sandbox_on: bool) -> str:
    """The setting's default: the sandbox's stand-in while the sandbox is on, else nothing."""
    return SANDBOX_SECRETS[name] if sandbox_on else ""


def secret_is_sandbox_value(name: str, value: str) -> bool:
    """True for a value that only the sandbox accepts (its stand-in, or any sandbox- value)."""
    value = value.strip()
    return bool(value) and (value == SANDBOX_SECRETS.get(name) or value.startswith(SANDBOX_PREFIX))
