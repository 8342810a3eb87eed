"""Where the admin import keeps a file between its preview and its confirmation.

django-import-export's default keeps it in the system's temporary folder, under a name the
confirm form sends back: nothing there knows whose file it is, a preview that refuses the file
never removes it, and nothing expires it or can erase a person from it. Here it is an
ImportUpload row owned by the workspace and the member who uploaded it (set around the admin's
views by ``upload_owner``): the confirm step finds only the same member's upload in the same
workspace, and retention and erasure reach it (contacts/import_runs.py, contacts/retention.py).
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from import_export.forms import ImportForm
from import_export.tmp_storages import BaseStorage

from contacts.errors import ImportUploadGone
from contacts.models import ImportUpload


@dataclass(frozen=True)
class _Owner:
    workspace_id: int
    user_id: int


_owner: contextvars.ContextVar[_Owner | None] = contextvars.ContextVar(
    "contacts_import_upload_owner", default=None
)


@contextmanager
def upload_owner(*, workspace_id: int, user_id: int) -> Iterator[None]:
    """The workspace and member that uploads made (or read) inside the block belong to."""
    token = _owner.set(_Owner(workspace_id=workspace_id, user_id=user_id))
    try:
        yield
    finally:
        _owner.reset(token)


def _current_owner() -> _Owner:
    owner = _owner.get()
    if owner is None:
        # A programming error, not a user's: the admin sets the owner around every import view.
        raise RuntimeError("an import upload was used outside upload_owner()")
    return owner


class DatabaseUploadStorage(BaseStorage):
    """django-import-export's temporary storage interface over ImportUpload rows."""

    def save(self, data: Any) -> None:
        owner = _current_owner()
        self.name = uuid.uuid4().hex
        content = data.encode(self.encoding or "utf-8") if isinstance(data, str) else bytes(data)
        ImportUpload.objects.create(
            name=self.name,
            workspace_id=owner.workspace_id,
            uploaded_by_id=owner.user_id,
            content=content,
        )

    def read(self) -> Any:
        content = self._mine().values_list("content", flat=True).first()
        if content is None:
            raise ImportUploadGone()
        raw = bytes(content)
        if "b" in (self.read_mode or ""):
            return raw
        return raw.decode(self.encoding or "utf-8")

    def remove(self) -> None:
        self._mine().delete()

    def _mine(self) -> Any:
        owner = _current_owner()
        return ImportUpload.objects.filter(
            name=str(self.name or "")[:32],
            workspace_id=owner.workspace_id,
            uploaded_by_id=owner.user_id,
        )


def upload_discard(*, name: str) -> None:
    """Drop an upload whose preview will not be confirmed (the owner's own only)."""
    DatabaseUploadStorage(name=name).remove()


class SizeLimitedImportForm(ImportForm):
    """The admin import's form, refusing a file over CONTACTS_ADMIN_IMPORT_MAX_BYTES with the
    reason: import-export reads the whole file into memory for the preview, and the upload is
    kept in the database until confirmed. Larger files belong to ``manage.py import_contacts``,
    which streams them."""

    def clean_import_file(self) -> Any:
        upload = self.cleaned_data["import_file"]
        limit = settings.CONTACTS_ADMIN_IMPORT_MAX_BYTES
        if upload is not None and upload.size > limit:
            raise forms.ValidationError(
                _(
                    "The file is %(size)s; the admin imports files up to %(limit)s. Split it, "
                    "or import it with manage.py import_contacts, which has no limit."
                )
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(limit)},
                code="too_large",
            )
        return upload
