"""Data the delivery benchmarks share: consented contacts and queued deliveries, made in bulk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def bench_workspace_id() -> int:
    """The one workspace the delivery benchmarks' contacts, messages and deliveries belong to."""
    from continuity.models import Workspace

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    return workspace.pk


def bench_contacts_ensure(
    *, channel: str, count: int, address: Callable[[int], dict[str, Any]]
) -> list[int]:
    """`count` contacts that may be sent to on `channel` (kept between runs), their ids in order."""
    from contacts.models import Contact, consent_bit

    prefix = f"bench-{channel}-"
    bit = consent_bit(channel, "marketing")
    workspace_id = bench_workspace_id()
    have = Contact.objects.filter(external_id__startswith=prefix).count()
    for start in range(have, count, 50_000):  # a million model instances at once: ~1 GB
        Contact.objects.bulk_create(
            [
                Contact(
                    workspace_id=workspace_id,
                    external_id=f"{prefix}{n}",
                    first_name=f"F{n}",
                    sendable=bit,
                    **address(n),
                )
                for n in range(start, min(start + 50_000, count))
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

    workspace_id = bench_workspace_id()
    message = Message.objects.create(
        workspace_id=workspace_id, name=f"bench {time.time()}", **content
    )
    now = timezone.now()
    ids: list[int] = []
    for start in range(0, len(contact_ids), 50_000):
        rows = Delivery.objects.bulk_create(
            [
                Delivery(
                    workspace_id=workspace_id,
                    message=message,
                    contact_id=c,
                    channel=channel,
                    status="queued",
                    queued_at=now,
                )
                for c in contact_ids[start : start + 50_000]
            ],
            batch_size=5000,
        )
        ids += [r.pk for r in rows]
    return ids
