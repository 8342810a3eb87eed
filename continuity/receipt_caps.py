"""Caps on refused webhook receipts, shared by the apps that keep receipts (delivery, outages).

A refused request (bad signature, unknown slug, malformed or replayed) is kept as evidence, but
anyone can send one, so what it may cost is bounded: its body is cut to a small prefix as soon
as it is refused, and a beat task keeps only the newest ones and none past a retention. The
apps say which of their rows are refused; the functions here never look beyond that queryset,
so a receipt of an accepted request is never cut or deleted by them.

Deletion goes in batches of ids, each its own short statement (no long transaction, no lock on
anything but the rows going), and stops after a budget of batches; the next run picks up
where this one stopped, since it recomputes what is over the caps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import Left, Length
from django.db.models.lookups import GreaterThan


def refused_body_trim(*, refused: QuerySet[Any], cap: int) -> int:
    """Cut the bodies of these refused receipts to ``cap`` characters; returns how many were
    cut."""
    return refused.filter(GreaterThan(Length("body"), cap)).update(
        body=Left("body", cap), body_truncated=True
    )


@dataclass
class PruneBudget:
    """How many delete batches one run may still spend, and their size."""

    batch: int
    batches_left: int

    @property
    def spent(self) -> bool:
        return self.batches_left <= 0


def refused_prune(
    *,
    refused: QuerySet[Any],
    keep: int | None,
    cutoff: datetime,
    budget: PruneBudget,
) -> int:
    """Delete the refused receipts that are not among the newest ``keep`` (None: no count cap)
    or were created before ``cutoff``; returns how many were deleted."""
    # One pass over the refused rows for both questions: how many there are, and the newest of
    # those past the retention. Only when they are over the count is the boundary looked up.
    found = refused.aggregate(n=Count("pk"), old=Max("pk", filter=Q(created_at__lt=cutoff)))
    boundary: int | None = found["old"]
    if keep is not None and found["n"] > keep:
        # A slice, not an index: rows may go between the count and this read.
        over = list(refused.order_by("-pk").values_list("pk", flat=True)[keep : keep + 1])
        if over:
            boundary = over[0] if boundary is None else max(boundary, over[0])
    if boundary is None:
        return 0
    deleted = 0
    after = 0
    while not budget.spent:
        ids = list(
            refused.filter(pk__gt=after, pk__lte=boundary)
            .order_by("pk")
            .values_list("pk", flat=True)[: budget.batch]
        )
        if not ids:
            break
        budget.batches_left -= 1
        # The refused filter again: a row is deleted only if it is still a refused one.
        deleted += refused.filter(pk__in=ids).delete()[0]
        after = ids[-1]
    return deleted
