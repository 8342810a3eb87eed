"""The Italian catalog is complete and current (#17): every string marked for translation has a
non-fuzzy Italian translation, the committed .mo says what the .po says, and `makemessages` would
add or drop nothing. docs/configuration.md ("Languages") says how to keep it so."""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import subprocess  # nosec B404
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.system_packages import system_binary

LOCALE = Path(settings.BASE_DIR) / "locale"
PO = LOCALE / "it" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "it" / "LC_MESSAGES" / "django.mo"
# Python's named and positional %-placeholders (python-format), and str.format's {} (format_html).
PLACEHOLDER = re.compile(
    r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%[-#0 +]*\d*[dsr]|\{\}"
)


@dataclass
class Entry:
    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)


def po_entries(path: Path) -> list[Entry]:
    """The entries of a .po file, header excluded: a small reader for what makemessages writes
    (polib is not a dependency)."""
    entries: list[Entry] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        flags: set[str] = set()
        obsolete = False
        key = ""
        for line in block.strip().splitlines():
            if line.startswith("#~"):
                obsolete = True
                continue
            if line.startswith("#,"):
                flags.update(flag.strip() for flag in line[2:].split(","))
                continue
            if line.startswith("#"):
                continue
            match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$', line)
            if match:
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"') and key:
                fields[key] += ast.literal_eval(line)
        if "msgid" not in fields and not obsolete:
            continue
        msgstr = [v for k, v in sorted(fields.items()) if k.startswith("msgstr")]
        entries.append(
            Entry(
                msgid=fields.get("msgid", ""),
                msgctxt=fields.get("msgctxt"),
                msgid_plural=fields.get("msgid_plural"),
                msgstr=msgstr,
                flags=flags,
                obsolete=obsolete,
            )
        )
    return [entry for entry in entries if entry.msgid or entry.obsolete]


def test_every_italian_string_is_translated_and_none_is_fuzzy() -> None:
    entries = po_entries(PO)
    assert len(entries) > 300  # the reader read the catalog, not an empty file
    untranslated = [e.msgid for e in entries if not e.obsolete and not all(e.msgstr)]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    obsolete = [e.msgid for e in entries if e.obsolete]
    assert untranslated == [], f"missing Italian for: {untranslated}"
    assert fuzzy == [], f"fuzzy (check, then drop the flag): {fuzzy}"
    assert obsolete == [], f"obsolete entries (run makemessages --no-obsolete): {obsolete}"


def test_every_translation_keeps_the_placeholders_of_its_english() -> None:
    wrong = []
    for entry in po_entries(PO):
        for english, italian in zip(
            [entry.msgid] + [entry.msgid_plural or entry.msgid] * (len(entry.msgstr) - 1),
            entry.msgstr,
            strict=True,
        ):
            if sorted(PLACEHOLDER.findall(english)) != sorted(PLACEHOLDER.findall(italian)):
                wrong.append((english, italian))
    assert wrong == []


def test_the_committed_mo_file_says_what_the_po_file_says() -> None:
    # The .mo is committed so that `make run` and production need no gettext tools; this keeps
    # it from drifting behind the .po it is compiled from.
    with MO.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    stale = []
    for entry in po_entries(PO):
        context = entry.msgctxt
        if entry.msgid_plural is None:
            got = (
                catalog.pgettext(context, entry.msgid) if context else catalog.gettext(entry.msgid)
            )
            if got != entry.msgstr[0]:
                stale.append(entry.msgid)
        else:
            for n, wanted in ((1, entry.msgstr[0]), (2, entry.msgstr[-1])):
                got = (
                    catalog.npgettext(context, entry.msgid, entry.msgid_plural, n)
                    if context
                    else catalog.ngettext(entry.msgid, entry.msgid_plural, n)
                )
                if got != wanted:
                    stale.append(entry.msgid)
    assert stale == [], f"compile the catalog (manage.py compilemessages): {stale}"


def test_no_module_imports_gettext_under_a_name_makemessages_does_not_read() -> None:
    # xgettext extracts only the names Django passes it (_, gettext, gettext_lazy, ngettext, ...):
    # a string marked with another alias would be untranslatable without anyone noticing.
    alias = re.compile(r"import\s+[^\n]*\b(?:n|p|np)?gettext(?:_lazy|_noop)?\s+as\s+(?!_\b)\w+")
    base = Path(settings.BASE_DIR)
    found = [
        str(path.relative_to(base))
        for top in ("campaigns", "contacts", "continuity", "delivery", "outages", "sandbox")
        for path in (base / top).rglob("*.py")
        if alias.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_makemessages_would_add_or_drop_no_string(tmp_path: Path) -> None:
    xgettext, why = system_binary(packages=("gettext",), binaries=("xgettext",))
    if xgettext is None:
        pytest.skip(why)
    # makemessages writes into the tree it scans: run it on a copy of the checkout, the catalog
    # left out, so it writes a fresh one to compare with ours. Dot folders (.venv, .git) and var/
    # are not sources, and makemessages skips them too.
    base = Path(settings.BASE_DIR)

    def not_sources(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == base
        return {
            name
            for name in names
            if name.startswith(".") or name == "__pycache__" or (top and name in {"var", "locale"})
        }

    shutil.copytree(base, tmp_path / "tree", ignore=not_sources)
    assert (tmp_path / "tree" / "manage.py").is_file()
    # Our own interpreter running the checkout's manage.py with a fixed argv: nothing untrusted.
    result = subprocess.run(  # nosec B603
        [sys.executable, "manage.py", "makemessages", "-l", "it", "--no-obsolete"],
        cwd=tmp_path / "tree",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    fresh_po = tmp_path / "tree" / "locale" / "it" / "LC_MESSAGES" / "django.po"
    fresh = {e.key for e in po_entries(fresh_po)}
    ours = {e.key for e in po_entries(PO) if not e.obsolete}
    assert fresh - ours == set(), "new strings: run manage.py makemessages -l it, then translate"
    assert ours - fresh == set(), "strings no longer in the code: run makemessages --no-obsolete"
