from csp.decorators import csp_update
from django.apps import apps
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from continuity import views
from continuity.admin_access import workspace_switch
from continuity.api import MeView

# Each app owns its routes: <app>/urls.py for pages and webhooks, <app>/api_urls.py for /api/v1/.
API_APPS = ("contacts", "outages", "delivery", "campaigns")

api_v1: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("me/", MeView.as_view(), name="me"),
    *(path("", include(f"{app}.api_urls")) for app in API_APPS),
    path("", include("campaigns.reroute_api_urls")),
]

# The sandbox app (loopback fakes, their inbox) exists only when SANDBOX_ENABLED; the product never
# imports it, so its pages are found by name through the app registry. Ahead of admin/, whose
# catch-all would answer for these paths otherwise.
sandbox_urls: list[URLPattern | URLResolver] = (
    [path("admin/sandbox/", include("sandbox.urls"))] if apps.is_installed("sandbox") else []
)

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    *sandbox_urls,
    path(
        "admin/workspace/switch/", admin.site.admin_view(workspace_switch), name="workspace-switch"
    ),
    path("admin/", admin.site.urls),
    # Django's set_language view (POST, CSRF-checked, `next` kept on this host): the admin's
    # language picker stores the choice in the language cookie (#17).
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include(api_v1)),
    # The split view serves Swagger UI's init script from its own URL (?script) and our template
    # links its page styles: no inline script or style, so the page runs under the strict CSP.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", template_name="continuity/swagger_ui.html"
        ),
        name="api-docs",
    ),
    # Redoc draws with styled-components, which writes <style> elements at run time: this page
    # alone allows inline style. It shows only our own schema, rendered by React (escaped), and
    # its template drops the stock one's web fonts. Its "Redocly" logo comes from a CDN: the
    # policy blocks it, as it blocks everything from another origin.
    path(
        "api/redoc/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularRedocView.as_view(url_name="schema", template_name="continuity/redoc.html")
        ),
        name="api-redoc",
    ),
    *(path("", include(f"{app}.urls", namespace=app)) for app in API_APPS),
]

# An unknown path under /api/ is a 404 in the API's error shape (continuity/api.py).
handler404 = "continuity.api.page_not_found"
