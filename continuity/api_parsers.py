"""The API's parsers (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]). Kept apart from continuity.api:
DRF imports them from its settings while rest_framework.views is still loading.

DRF's three, plus what PostgreSQL and the code behind them cannot take, refused as a 400 naming
the place instead of a 500 later: NUL and lone surrogates (text and jsonb cannot hold them), NaN,
Infinity and 1e400, and nesting deeper than continuity.inputs allows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from continuity.inputs import InputRejected, json_parse, text_storable


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig(_("The body is over %(limit)s bytes.") % {"limit": limit})
        try:
            return json_parse(raw=raw, nul="reject", where="body")
        except InputRejected as exc:
            raise ParseError(exc.detail) from None


def fields_storable_check(fields: Any, *, what: str) -> None:
    """Refuse (400) a QueryDict of form fields or query parameters holding NUL or a lone
    surrogate in a name or a value: a database filter or column would fail on it later."""
    for key, values in fields.lists():
        for value in [key, *values]:
            if isinstance(value, str) and text_storable(value) != value:
                raise ParseError(
                    _("%(what)s %(name)r holds a NUL byte or an unpaired surrogate.")
                    % {"what": what, "name": text_storable(key)[:64]}
                )


class FormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        fields_storable_check(data, what=_("Form field"))
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        fields_storable_check(parsed.data, what=_("Form field"))
        return parsed
