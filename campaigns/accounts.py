"""Social accounts: setting a token (stored encrypted only), the publisher's view of an account,
and the admin's connection check."""

from __future__ import annotations

from django.utils import timezone

from campaigns.models import SocialAccount
from delivery.publishers import publisher_for
from delivery.publishers.base import ConnectionStatus, SocialAccountRef
from delivery.secrets import TokenDecryptError, token_decrypt, token_encrypt


def social_account_token_set(*, account: SocialAccount, token: str) -> SocialAccount:
    """Store a new access token, encrypted; the plaintext is never saved or shown."""
    account.access_token_encrypted = token_encrypt(plaintext=token.strip())
    account.last_check_ok = None
    account.last_check_detail = ""
    account.save(
        update_fields=[
            "access_token_encrypted",
            "last_check_ok",
            "last_check_detail",
            "updated_at",
        ]
    )
    return account


def social_account_ref(*, account: SocialAccount) -> SocialAccountRef | None:
    """The publisher's view of the account with its token decrypted; None when no key opens
    the stored token (the caller reports it as a reconnect-the-account problem)."""
    try:
        token = token_decrypt(ciphertext=account.access_token_encrypted)
    except TokenDecryptError:
        return None
    return SocialAccountRef(
        network=account.network,
        access_token=token,
        page_id=account.page_id,
        ig_user_id=account.ig_user_id,
        x_user_id=account.x_user_id,
        phone_number_id=account.phone_number_id,
        display_name=account.display_name,
    )


def social_account_check(*, account: SocialAccount) -> ConnectionStatus:
    """Ask the network whether the token works; the answer is stored on the account."""
    if not account.access_token_encrypted:
        status = ConnectionStatus(ok=False, detail="no access token: set one first")
    else:
        ref = social_account_ref(account=account)
        if ref is None:
            status = ConnectionStatus(
                ok=False,
                detail="the stored token cannot be decrypted with the configured keys: "
                "set the token again",
            )
        else:
            status = publisher_for(network=account.network).check_connection(account=ref)
    account.last_checked_at = timezone.now()
    account.last_check_ok = status.ok
    account.last_check_detail = status.detail[:500]
    account.save(update_fields=["last_checked_at", "last_check_ok", "last_check_detail"])
    return status


def whatsapp_account_for_message(*, message_id: int) -> SocialAccountRef | None:
    """The WhatsApp account of the campaign that owns this message (delivery asks, by setting)."""
    account = (
        SocialAccount.objects.filter(
            network="whatsapp", active=True, posts__campaign__message_id=message_id
        )
        .order_by("pk")
        .first()
    )
    return social_account_ref(account=account) if account is not None else None
