"""HTTP edge of the monitor webhooks: read at most the cap, hand everything to intake."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from outages.intake import webhook_intake
from outages.models import Verdict

logger = logging.getLogger(__name__)


@csrf_exempt
def monitor_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    cap = settings.OUTAGES_WEBHOOK_MAX_BODY_BYTES
    # Read one byte past the cap: enough to know it is too large without buffering the rest.
    body = request.read(cap + 1)
    result = webhook_intake(
        slug=slug,
        method=request.method or "",
        headers=request.headers,
        query={k: request.GET.get(k, "") for k in request.GET},
        body=body,
        content_type=request.headers.get("Content-Type", ""),
        too_large=len(body) > cap,
    )
    if result.verdict not in (Verdict.ACCEPTED, Verdict.IGNORED):
        logger.info(
            "monitor webhook %s refused or unmapped: %s %s",
            slug,
            result.status_code,
            result.reason,
            extra={"receipt_id": result.receipt_id},
        )
    response = JsonResponse(result.as_json(), status=result.status_code)
    if result.status_code == 405:
        response["Allow"] = "POST"
    return response
