from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from continuity.health import readiness_checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    # Liveness touches no dependency: a restart would not fix a database outage.
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness_checks()
    ready = all(check.ok for check in checks)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            check.name: {"ok": check.ok, "detail": check.detail, "elapsed_ms": check.elapsed_ms}
            for check in checks
        },
    }
    return JsonResponse(body, status=200 if ready else 503)
