"""SMS keyword lists: the standard English ones every carrier and Twilio honour, and the rules
for the words a workspace adds in its customers' language (``Workspace.sms_*_keywords``).

Text only, no provider: the workspace admin checks lists with it, and delivery.sms_keywords
applies them to inbound messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from django.utils.translation import gettext as _

# Twilio's default opt-out, opt-in and help keywords (the US carriers' standard English ones).
# Like Twilio, a keyword counts only as the whole message (one word, any case): "Cancel my order"
# is a customer talking, not an opt-out.
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

STOP, START, HELP = "stop", "start", "help"
STANDARD_WORDS = {STOP: STOP_WORDS, START: START_WORDS, HELP: HELP_WORDS}
KEYWORD_MAX_LENGTH = 30
_KEYWORD = re.compile(r"^\w{1,30}$")


class KeywordListInvalid(ValueError):
    """A keyword list with a word that cannot be one; the message names it."""


def keyword_normalise(text: str) -> str:
    """How a message and a configured word are compared: trimmed, trailing punctuation dropped,
    upper-cased (``Annulla!`` -> ``ANNULLA``)."""
    return text.strip().strip(".!?,;:").upper()


def keywords_parse(raw: str) -> list[str]:
    """``"annulla, Cancella"`` -> ``["ANNULLA", "CANCELLA"]``; KeywordListInvalid naming an item
    that is not one word (a phrase, punctuation, a number)."""
    words: list[str] = []
    for item in (raw or "").split(","):
        word = keyword_normalise(item)
        if not word:
            continue
        if not _KEYWORD.match(word) or word.isdigit() or "_" in word:
            raise KeywordListInvalid(
                _(
                    '"%(word)s" is not a keyword: one word of letters, at most %(max)s, '
                    "separated from the next by a comma."
                )
                % {"word": item.strip(), "max": KEYWORD_MAX_LENGTH}
            )
        if word not in words:
            words.append(word)
    return words


def keyword_clashes(lists: Mapping[str, Iterable[str]]) -> list[str]:
    """Words that would mean two things: in two lists, or a standard word of another kind
    (STOP as an opt-in word would opt people in here and out at Twilio)."""
    owner: dict[str, str] = {}
    for kind, standard in STANDARD_WORDS.items():
        for word in standard:
            owner[word] = kind
    clashes: list[str] = []
    for kind, words in lists.items():
        for word in words:
            if owner.setdefault(word, kind) != kind and word not in clashes:
                clashes.append(word)
    return clashes
