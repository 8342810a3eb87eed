"""Inbound SMS keywords: Twilio's own, and each workspace's in its customers' language.

Twilio's default keywords (STOP, START, HELP and their synonyms, English only) always apply:
Twilio itself blocks the sender on STOP and answers STOP and START. A workspace may add its own
words (``Workspace.sms_stop_keywords`` ...: ANNULLA, ISCRIVIMI, AIUTO): Twilio does nothing with
those unless its Advanced Opt-Out is configured with them, so here they change consent for that
workspace's contacts only, and the answer (a confirmation, or the help text) is sent by us, in the
contact's language. With Advanced Opt-Out the inbound carries ``OptOutType``: Twilio acted and
answered with the messages configured there, so we change consent and answer nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from contacts.language import interface_language
from contacts.models import Contact
from continuity.models import Workspace
from continuity.sms_keywords import (
    HELP_WORDS,
    START_WORDS,
    STOP_WORDS,
    KeywordListInvalid,
    keywords_parse,
)
from delivery.models import ReceiptVerdict
from delivery.provider_events import InboundSms, OptAction, OptEvent
from delivery.status import KeywordResult, sms_keyword_apply

TWILIO_WORDS = {
    OptAction.OPT_OUT: STOP_WORDS,
    OptAction.OPT_IN: START_WORDS,
    OptAction.HELP: HELP_WORDS,
}
FIELDS = {
    OptAction.OPT_OUT: "sms_stop_keywords",
    OptAction.OPT_IN: "sms_start_keywords",
    OptAction.HELP: "sms_help_keywords",
}
# The install's default HELP answer, marked for translation; a DELIVERY_SMS_HELP_TEXT set in the
# environment is the business's own words and is sent as written.
DEFAULT_HELP_TEXT = gettext_noop(
    "Continuity alerts. Reply STOP to unsubscribe, START to resubscribe."
)


def workspace_keywords(workspace: Workspace) -> dict[OptAction, tuple[str, ...]]:
    """The workspace's own keywords per action, in its order (a malformed stored list counts as
    empty: the admin refuses one, so only a hand-edited row has it)."""
    lists: dict[OptAction, tuple[str, ...]] = {}
    for action, field in FIELDS.items():
        try:
            lists[action] = tuple(keywords_parse(getattr(workspace, field)))
        except KeywordListInvalid:
            lists[action] = ()
    return lists


@dataclass(frozen=True)
class _Reading:
    action: OptAction
    keyword: str
    workspace_ids: list[int]
    # Twilio answered (its own keyword, or Advanced Opt-Out): we send nothing but HELP's answer.
    twilio_handled: bool


def _reading(inbound: InboundSms, workspace_ids: Collection[int]) -> _Reading | None:
    if inbound.opt_out_type:
        types = {"STOP": OptAction.OPT_OUT, "START": OptAction.OPT_IN, "HELP": OptAction.HELP}
        chosen = types.get(inbound.opt_out_type)
        if chosen is None:
            return None
        return _Reading(chosen, inbound.opt_out_type, list(workspace_ids), twilio_handled=True)
    word = inbound.keyword
    if not word:
        return None
    for action, twilio in TWILIO_WORDS.items():
        if word in twilio:
            return _Reading(action, word, list(workspace_ids), twilio_handled=True)
    configured = Workspace.objects.filter(pk__in=list(workspace_ids)).exclude(
        sms_stop_keywords="", sms_start_keywords="", sms_help_keywords=""
    )
    for action in TWILIO_WORDS:
        ids = [w.pk for w in configured if word in workspace_keywords(w)[action]]
        if ids:
            return _Reading(action, word, ids, twilio_handled=False)
    return None


def inbound_keyword_apply(*, inbound: InboundSms, workspace_ids: Collection[int]) -> KeywordResult:
    """Read ``inbound`` as a keyword of Twilio's or of the workspaces it may speak for, apply it
    to those workspaces' contacts with that number, and say what to answer (in the contact's
    language). Verdict "ignored" when the message is no keyword."""
    reading = _reading(inbound, workspace_ids)
    if reading is None:
        return KeywordResult(ReceiptVerdict.IGNORED, 0, reason="no keyword")
    result = sms_keyword_apply(
        event=OptEvent(
            phone=inbound.phone,
            action=reading.action,
            keyword=reading.keyword,
            message_id=inbound.message_id,
            raw=inbound.raw,
        ),
        workspace_ids=reading.workspace_ids,
    )
    # HELP is answered unless Advanced Opt-Out did; our own STOP and START words are confirmed,
    # to a contact we know (Twilio answers its own words, and would not deliver our answer
    # to a handset that just opted out of them).
    answer_help = reading.action == OptAction.HELP and not inbound.opt_out_type
    reply = ""
    if answer_help or not reading.twilio_handled:
        contact = (
            Contact.objects.filter(
                phone=inbound.phone,
                erased_at__isnull=True,
                workspace_id__in=reading.workspace_ids,
            )
            .select_related("workspace")
            .order_by("pk")
            .first()
        )
        if contact is not None or answer_help:
            reply = keyword_reply(action=reading.action, contact=contact)
    return KeywordResult(
        result.verdict, result.matched, reply, result.reason, workspace_id=result.workspace_id
    )


def keyword_reply(*, action: OptAction, contact: Contact | None) -> str:
    """The answer to a keyword, in the contact's language (their workspace's when they have
    none; the install's without a contact). It names the workspace's own first keyword when it
    answers in the workspace's language (ANNULLA to an Italian), else Twilio's (STOP)."""
    workspace = contact.workspace if contact is not None else None
    language = interface_language(contact.locale if contact else "", workspace)
    own: dict[OptAction, tuple[str, ...]] = {}
    if workspace is not None and language == interface_language("", workspace):
        own = workspace_keywords(workspace)
    stop = (*own.get(OptAction.OPT_OUT, ()), "STOP")
    start = (*own.get(OptAction.OPT_IN, ()), "START")
    with translation.override(language):
        if action == OptAction.HELP:
            configured = settings.DELIVERY_SMS_HELP_TEXT
            if configured != DEFAULT_HELP_TEXT:
                return str(configured)
            if workspace is None:
                return _(DEFAULT_HELP_TEXT)
            return _("%(name)s. Reply %(stop)s to unsubscribe, %(start)s to resubscribe.") % {
                "name": workspace.name,
                "stop": stop[0],
                "start": start[0],
            }
        name = workspace.name if workspace is not None else ""
        if action == OptAction.OPT_OUT:
            return _(
                "%(name)s: you will receive no more text messages from us. "
                "Reply %(start)s to receive them again."
            ) % {"name": name, "start": start[0]}
        return _(
            "%(name)s: you will receive our text messages again. Reply %(stop)s to stop them."
        ) % {"name": name, "stop": stop[0]}
