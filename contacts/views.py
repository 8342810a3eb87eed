"""Public pages reached by signed links (no login), and the public push subscribe endpoint.
Thin: read the token, call one use case, render.

Whose data: a signed link names a contact, and the contact's workspace is the one acted in. The
push endpoint may create an anonymous contact, so it names its workspace by slug in the URL
(``/push/<workspace>/subscribe/``); a link token there must name a contact of that workspace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from contacts import links
from contacts.consent import Evidence, consent_confirm, consent_revoke
from contacts.errors import (
    BadLink,
    ContactsError,
    InvalidContactData,
    UnknownWorkspace,
)
from contacts.language import interface_language, primary_language
from contacts.language_names import language_name
from contacts.link_mail import preference_link_request
from contacts.models import Channel, ConsentSource, ConsentState, Contact, Purpose
from contacts.preferences import (
    PREFERENCE_CHANNELS,
    PreferenceChanges,
    email_change_confirm,
    preferences_apply,
)
from contacts.push import push_subscription_register
from contacts.selectors import consent_states
from continuity.client_ip import client_ip
from continuity.inputs import InputRejected, json_parse, text_storable
from continuity.models import Workspace

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static" / "contacts"


# ?lang=it on any public page: the switch between the interface languages. It changes what this
# page shows, not the contact's language (the preference centre's form does that).
LANGUAGE_PARAM = "lang"


def _asked_language(request: HttpRequest) -> str | None:
    wanted = request.GET.get(LANGUAGE_PARAM, "")
    supported = {code for code, _name in settings.LANGUAGES}
    return wanted if wanted in supported else None


def _page_language(request: HttpRequest, contact: Contact | None, *, chosen: str = "") -> str:
    """The switch's choice, else what the contact just chose, else the contact's interface
    language (then the workspace's): not the browser's, a mail's link is opened on any device.
    The browser's (LocaleMiddleware's choice) only where we know no language: a broken link, or
    a contact and workspace without one."""
    asked = _asked_language(request)
    if asked is not None:
        return asked
    if contact is None or not (chosen or contact.locale or contact.workspace.language):
        return translation.get_language()
    return interface_language(chosen or contact.locale, contact.workspace)


def _page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    switch: bool = True,
) -> HttpResponse:
    """Render in the active language (the caller's translation.override), with the switch
    (not on an answer to a POST-only address, where the switch's GET would be refused)."""
    language = translation.get_language()
    asked = _asked_language(request)
    languages = [
        (code, translation.get_language_info(code)["name_local"])
        for code, _name in settings.LANGUAGES
    ]
    response = render(
        request,
        template,
        {
            **context,
            "language_switch": languages if switch else [],
            "language_query": f"?{LANGUAGE_PARAM}={asked}" if asked else "",
        },
        status=status,
    )
    # LocaleMiddleware would otherwise label the page with the browser's language.
    response["Content-Language"] = language
    return response


def _evidence(request: HttpRequest, source: str, note: str = "") -> Evidence:
    return Evidence(
        source=source,
        ip=client_ip(request),
        user_agent=text_storable(request.META.get("HTTP_USER_AGENT", "")[:500]),
        consent_text_version=settings.CONTACTS_CONSENT_TEXT_VERSION,
        recorded_by="contact",
        note=note,
    )


def _bad_link(request: HttpRequest, exc: ContactsError) -> HttpResponse:
    with translation.override(_page_language(request, None)):
        return _page(
            request,
            "contacts/link_error.html",
            {"message": exc.detail, "code": exc.code},
            status=exc.status_code,
        )


def _contact(claims: links.LinkClaims) -> Contact:
    # The contact's workspace is the one every public page acts in.
    contact = Contact.objects.select_related("workspace").filter(pk=claims.contact_id).first()
    if contact is None:
        raise BadLink(_("this link points at a contact we no longer hold"))
    return contact


def _vapid_public_key(*, workspace_id: int) -> str:
    resolve: Callable[..., str] = import_string(settings.CONTACTS_VAPID_PUBLIC_KEY_RESOLVER)
    return resolve(workspace_id=workspace_id)


@csrf_exempt  # RFC 8058: mail providers POST the one-click body without any CSRF token.
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """An unsubscribe link only unsubscribes. It travels in every mail's headers, so whoever a
    mail was forwarded to holds it: it shows no personal data and opens nothing else (the page's
    "manage your preferences" mails a link to the contact's own address, see below)."""
    try:
        claims = links.token_read(token=token, salt=links.SALT_UNSUBSCRIBE)
        contact = _contact(claims)
    except ContactsError as exc:
        return _bad_link(request, exc)
    channel = claims.channel or Channel.EMAIL
    label = Channel(channel).label
    if request.method == "GET":
        # Link scanners follow GETs: showing a confirm page keeps them from unsubscribing anyone.
        with translation.override(_page_language(request, contact)):
            return _page(
                request,
                "contacts/unsubscribe.html",
                {"channel": label, "done": False, "token": token},
            )
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    if contact.erased_at is None:
        consent_revoke(
            contact=contact,
            channel=channel,
            purpose=Purpose.MARKETING,
            evidence=_evidence(
                request,
                ConsentSource.UNSUBSCRIBE_LINK,
                note="one-click (RFC 8058)" if one_click else "confirm page",
            ),
        )
    if one_click:
        return HttpResponse("unsubscribed\n", content_type="text/plain")
    with translation.override(_page_language(request, contact)):
        return _page(
            request, "contacts/unsubscribe.html", {"channel": label, "done": True, "token": token}
        )


@require_http_methods(["POST"])
def unsubscribe_manage(request: HttpRequest, token: str) -> HttpResponse:
    """ "Manage your preferences" on the unsubscribe page: a fresh preference link is mailed to
    the address we hold for the contact, never returned here. The answer is the same whether the
    contact has an address, was sent one a minute ago, or the mail failed."""
    try:
        claims = links.token_read(token=token, salt=links.SALT_UNSUBSCRIBE)
        contact = _contact(claims)
    except ContactsError as exc:
        return _bad_link(request, exc)
    preference_link_request(contact=contact)
    with translation.override(_page_language(request, contact)):
        return _page(request, "contacts/preference_link_sent.html", {}, switch=False)


def _language_options(contact: Contact) -> tuple[list[tuple[str, str]], str]:
    """The preference centre's language select: the interface languages, each in its own name,
    plus the contact's language when the pages do not speak it (kept, so saving the form for
    something else never changes it); and which option is the contact's."""
    options = [
        (code, translation.get_language_info(code)["name_local"])
        for code, _name in settings.LANGUAGES
    ]
    primary = primary_language(contact.locale)
    if primary in {code for code, _label in options}:
        return options, primary
    if contact.locale:
        options.append((contact.locale, language_name(contact.locale) or contact.locale))
    else:
        # Unset stays unset unless the contact picks one: the workspace's language still applies.
        options.insert(0, ("", _("Not chosen")))
    return options, contact.locale


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        claims = links.token_read(token=token, salt=links.SALT_PREFERENCES)
        contact = _contact(claims)
    except ContactsError as exc:
        return _bad_link(request, exc)
    if contact.erased_at is not None:
        return _bad_link(request, BadLink(_("we hold no data for this link any more")))
    options = _language_options(contact)[0]
    chosen = ""
    if request.method == "POST":
        posted = request.POST.get("language", "")
        chosen = posted if posted in {code for code, _label in options} else ""
    # A contact who just chose a language reads the answer in it (and every later page).
    with translation.override(_page_language(request, contact, chosen=chosen)):
        return _preferences_page(request, contact, options=options, chosen=chosen)


def _preferences_page(
    request: HttpRequest, contact: Contact, *, options: list[tuple[str, str]], chosen: str
) -> HttpResponse:
    errors: dict[str, str] = {}
    result: PreferenceChanges | None = None
    if request.method == "POST":
        wanted = {
            ch.value: request.POST.get(f"channel_{ch.value}") == "on" for ch in PREFERENCE_CHANNELS
        }
        try:
            result = preferences_apply(
                contact=contact,
                wanted=wanted,
                email=request.POST.get("email", contact.email or ""),
                phone=request.POST.get("phone", str(contact.phone or "")),
                language=chosen or None,
                evidence=_evidence(request, ConsentSource.PREFERENCE_CENTRE),
            )
        except InvalidContactData as exc:
            errors = exc.detail if isinstance(exc.detail, dict) else {"form": str(exc.detail)}
        contact.refresh_from_db()
    states = consent_states(contact=contact)
    channels = [
        {
            "value": ch.value,
            "label": ch.label,
            "state": states.get((ch.value, Purpose.MARKETING), ""),
            "on": states.get((ch.value, Purpose.MARKETING)) == ConsentState.GRANTED,
        }
        for ch in PREFERENCE_CHANNELS
    ]
    phone = str(contact.phone or "")
    if result is not None and result.phone_requested is not None:
        phone = result.phone_requested
    options, selected = _language_options(contact)
    return _page(
        request,
        "contacts/preferences.html",
        {
            "contact": contact,
            "phone": phone,
            "channels": channels,
            "languages": options,
            "language_selected": selected,
            "errors": errors,
            "saved": result.changed if result is not None else None,
            "email_confirmation_to": result.email_confirmation_to if result else "",
            "email_change_throttled": result.email_change_throttled if result else False,
            "link_mail_interval": settings.CONTACTS_LINK_MAIL_INTERVAL_MIN,
            "push_token": links.push_token(contact_id=contact.pk),
            "push_workspace": contact.workspace.slug,
            "vapid_public_key": _vapid_public_key(workspace_id=contact.workspace_id),
        },
        status=400 if errors else 200,
    )


@require_http_methods(["GET", "POST"])
def email_change(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed to a new address: GET asks (mail scanners follow GETs), POST confirms."""
    try:
        claims = links.token_read(token=token, salt=links.SALT_EMAIL_CHANGE)
        contact = _contact(claims)
        if not claims.email:
            raise BadLink(_("this link is not valid"))
    except ContactsError as exc:
        return _bad_link(request, exc)
    with translation.override(_page_language(request, contact)):
        if request.method == "GET":
            return _page(
                request, "contacts/email_change.html", {"done": False, "email": claims.email}
            )
        try:
            email_change_confirm(
                contact=contact,
                email=claims.email,
                previous_email=claims.previous_email,
                evidence=_evidence(request, ConsentSource.PREFERENCE_CENTRE),
            )
        except ContactsError as exc:
            return _bad_link(request, exc)
        return _page(request, "contacts/email_change.html", {"done": True, "email": claims.email})


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        claims = links.token_read(token=token, salt=links.SALT_DOUBLE_OPT_IN)
        contact = _contact(claims)
    except ContactsError as exc:
        return _bad_link(request, exc)
    with translation.override(_page_language(request, contact)):
        if request.method == "GET":
            return _page(request, "contacts/confirm.html", {"done": False})
        try:
            consent_confirm(
                contact=contact,
                purpose=claims.purpose or Purpose.MARKETING,
                evidence=_evidence(request, ConsentSource.DOUBLE_OPT_IN),
            )
        except ContactsError as exc:
            return _bad_link(request, exc)
        return _page(request, "contacts/confirm.html", {"done": True})


def _json_error(exc: ContactsError) -> JsonResponse:
    return JsonResponse({"error": exc.code, "detail": exc.detail}, status=exc.status_code)


# A browser's PushSubscription.toJSON() with a token is well under 2 KB.
PUSH_BODY_MAX_BYTES = 16 * 1024


def _push_body(request: HttpRequest) -> dict[str, Any]:
    """The push subscribe body: a JSON object of bounded size and depth whose strings can be
    stored, with string fields that fit their columns; InvalidContactData names what is wrong."""
    try:
        body = json_parse(raw=request.body or b"null", max_bytes=PUSH_BODY_MAX_BYTES)
    except InputRejected as exc:
        raise InvalidContactData(exc.detail) from None
    if not isinstance(body, dict):
        raise InvalidContactData(
            'expected {"subscription": PushSubscription.toJSON(), "token": ...}'
        )
    for name, limit in (("token", 1000), ("consent_text_version", 100)):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidContactData(f"{name} must be a string")
        if value is not None and len(value) > limit:
            raise InvalidContactData(f"{name} is longer than {limit} characters")
    return body


def _push_workspace(slug: str | None, contact: Contact | None) -> Workspace:
    """The workspace a subscription joins: the URL's, which a token's contact must belong to
    (a token is never honoured for another workspace); without a slug, the token's contact's."""
    if slug is None:
        if contact is None:
            raise InvalidContactData(
                _(
                    "a subscription without a token names its workspace: post to "
                    "/push/<workspace>/subscribe/"
                )
            )
        return contact.workspace
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise UnknownWorkspace(_("no workspace answers at this address"))
    if contact is not None and contact.workspace_id != workspace.pk:
        # The same answer as a bad signature: whether the contact exists elsewhere is not said.
        raise BadLink(_("this link is not valid"))
    return workspace


@csrf_exempt  # cross-origin JSON from the business's own site; CORS is the allow-list.
@require_http_methods(["POST"])
def push_subscribe(request: HttpRequest, workspace_slug: str | None = None) -> JsonResponse:
    """A browser's subscription (and the push opt-in it stands for). Anyone may call it, as the
    business's site does: the slug is public, so what guards it is the per-IP rate limit, the
    push-service allow-list of endpoints, CORS, and that only a signed token attaches the
    subscription to an existing contact (of that workspace)."""
    try:
        body = _push_body(request)
        contact = None
        token = body.get("token")
        if token:
            claims = links.token_read(token=token, salt=links.SALT_PUSH)
            contact = _contact(claims)
            if contact.erased_at is not None:
                raise BadLink(_("this link points at a contact we no longer hold"))
        workspace = _push_workspace(workspace_slug, contact)
        subscription = push_subscription_register(
            workspace=workspace,
            data=body.get("subscription"),
            contact=contact,
            ip=client_ip(request),
            user_agent=text_storable(request.META.get("HTTP_USER_AGENT", "")[:500]),
            consent_text_version=body.get("consent_text_version") or "",
        )
    except ContactsError as exc:
        return _json_error(exc)
    logger.info("push subscription stored", extra={"subscription_id": subscription.pk})
    return JsonResponse({"status": "subscribed"}, status=201)


def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker, served from our origin for the preference centre's own button."""
    response = HttpResponse(
        (STATIC_DIR / "continuity-push-sw.js").read_text(),
        content_type="application/javascript",
    )
    response["Service-Worker-Allowed"] = "/"
    response["Cache-Control"] = "no-cache"
    return response
