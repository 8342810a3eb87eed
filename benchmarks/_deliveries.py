"""Data the delivery benchmarks share: consented contacts and queued deliveries, made in bulk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def bench_contacts_ensure(
    *, channel: str, count: int, address: Callable[[int], dict[str, Any]]
) -> list[int]:
    """`count` contacts that may be sent to on `channel` (kept between runs), their ids in order."""
    from contacts.models import Contact, consent_bit

    prefix = f"bench-{channel}-"
    bit = consent_bit(channel, "marketing")
    have = Contact.objects.filter(external_id__startswith=prefix).count()
    if have < count:
        Contact.objects.bulk_create(
            [
                Contact(external_id=f"{prefix}{n}", first_name=f"F{n}", sendable=bit, **address(n))
                for n in range(have, count)
            ],
            batch_size=5000,
        )
    return list(
        Contact.objects.filter(external_id__startswith=prefix)
        .order_by("id")
        .values_list("id", flat=True)[:count]
    )


def bench_deliveries_queue(*, channel: str, contact_ids: list[int], **content: str) -> list[int]:
    """A fresh message (with `content`) and one queued delivery per contact, as dispatch leaves
    them."""
    import time

    from django.utils import timezone

    from delivery.models import Delivery, Message

    message = Message.objects.create(name=f"bench {time.time()}", **content)
    now = timezone.now()
    rows = Delivery.objects.bulk_create(
        [
            Delivery(message=message, contact_id=c, channel=channel, status="queued", queued_at=now)
            for c in contact_ids
        ],
        batch_size=5000,
    )
    return [r.pk for r in rows]
