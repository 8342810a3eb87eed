"""Every secret a production install (DEBUG and the sandbox off) must set, with made-up values
that pass the deploy checks (continuity/checks.py): for tests that start a production-shaped
process. None of these reaches a provider."""

from __future__ import annotations

# Made-up values for test processes, accepted by no provider.
PRODUCTION_SECRET_KEY = "a-long-random-production-secret-key-0123456789-abcdefghijklmnop"
PRODUCTION_SECRETS: dict[str, str] = {
    "TWILIO_ACCOUNT_SID": "AC" + "5" * 32,
    "TWILIO_AUTH_TOKEN": "0f" * 16,
    "TWILIO_FROM_NUMBER": "+14155550100",
    "SENDGRID_API_KEY": "SG.production-test-key.0123456789",
    "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE-test",
    "VAPID_PRIVATE_KEY": "production-test-vapid-private-key",
    "VAPID_PUBLIC_KEY": "production-test-vapid-public-key",
    "WHATSAPP_PHONE_NUMBER_ID": "109876543210987",
    "WHATSAPP_ACCESS_TOKEN": "EAAG-production-test-token",
    "SOCIAL_TOKEN_KEYS": "yHxtgplI4byoFRvWeYVvgG1Lh_2YgwSfztm2VuhAfVU=",
    "OUTAGES_CREDENTIAL_KEY": "production-test-outages-credential-key-0123456789",
    "CONTACTS_ERASURE_HASH_KEY": "production-test-erasure-hash-key-0123456789",
    "CONTACTS_LINK_SIGNING_KEY": "a-long-random-link-signing-key-0123456789-abcdefghijklmnop",
}
