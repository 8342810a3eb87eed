"""The sandbox inbox pages, mounted under /admin/sandbox/ while the sandbox app is installed."""

from django.contrib import admin
from django.urls import path

from sandbox.admin import sandbox_fault_view, sandbox_inbox_view

app_name = "sandbox"

urlpatterns = [
    path("inbox/", admin.site.admin_view(sandbox_inbox_view), name="inbox"),
    path("inbox/fault/", admin.site.admin_view(sandbox_fault_view), name="fault"),
]
