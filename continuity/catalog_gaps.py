"""Strings Django's admin shows whose Italian its own catalog lacks (newer than its last Italian
update). Marked here so that makemessages puts them in our catalog, whose translations Django
finds first (LOCALE_PATHS); nothing imports this module."""

from django.utils.translation import gettext_noop

CATALOG_GAPS = (
    # django/contrib/admin/templates/admin/app_list.html: the column titles of the app list.
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
)
