"""The marketer template language: refused on save with the line and the reason, rendered by a
restricted engine, and a template stored before the rules fails its deliveries with the reason
instead of taking a chunk down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.template import engines
from django.test import Client
from py_vapid import Vapid02

from contacts.models import Channel
from delivery.dispatch import deliveries_send_chunk
from delivery.merge import merge_template_compile
from delivery.models import Delivery, Message
from delivery.providers.base import (
    Failed,
    OutboundMessage,
    PushContent,
    PushKeys,
    Sent,
    SmsContent,
)
from delivery.providers.twilio_sms import TwilioSmsSender, twilio_client
from delivery.providers.webpush import WebPushSender, push_host_backoff_clear
from delivery.providers.whatsapp import WhatsAppContent, WhatsAppSender
from delivery.ratelimit import RedisTokenBucket
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from delivery.templating import (
    ALLOWED_FILTERS,
    ALLOWED_TAGS,
    TEMPLATE_INVALID,
    MarketerTemplateError,
    marketer_template_compile,
    marketer_template_render,
    marketer_template_validate,
)
from sandbox.graph import GraphFake
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_dispatch import enqueue_now, make_message, plan
from tests.workspaces import workspace_for_tests

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

REFUSED = [
    ('{% include "nope.html" %}', "Line 1", "{% include %} is not allowed"),
    ('Hi\n{% extends "admin/base.html" %}', "Line 2", "{% extends %} is not allowed"),
    ("{% load static %}{% static 'x' %}", "Line 1", "{% load %} is not allowed"),
    ("{% debug %}", "Line 1", "{% debug %} is not allowed"),
    ('{% ssi "/etc/passwd" %}', "Line 1", "{% ssi %} is not allowed"),
    ('{% url "admin:index" %}', "Line 1", "{% url %} is not allowed"),
    ("{% for c in first_name %}{{ c }}{% endfor %}", "Line 1", "{% for %} is not allowed"),
    ("{% autoescape off %}{{ x }}{% endautoescape %}", "Line 1", "{% autoescape %} is not"),
    ("a\nb\n{{ first_name|safe }}", "Line 3", "filter “safe” is not allowed"),
    ('{{ first_name|ljust:"100000000" }}', "Line 1", "filter “ljust” is not allowed"),
    ('{{ first_name|date:"Y" }}', "Line 1", "filter “date” is not allowed"),
    ("Hi\n{% if first_name %}no end", "Line 2", "Unclosed tag"),
    ("{{ first name }}", "Line 1", "Could not parse"),
    ("{{ _private }}", "Line 1", "may not begin with underscores"),
]


@pytest.mark.parametrize(("source", "line", "reason"), REFUSED)
def test_a_template_outside_the_language_is_refused_with_the_line_and_the_reason(
    source: str, line: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        marketer_template_validate(source)
    (message,) = refused.value.messages
    assert message.startswith(f"{line}:") and reason in message
    assert refused.value.error_list[0].code == TEMPLATE_INVALID


def test_every_message_text_is_checked_when_saved() -> None:
    bad = '{% include "nope.html" %}'
    fields = [
        "email_subject",
        "email_html",
        "email_text",
        "sms_text",
        "push_title",
        "push_body",
        "push_url",
        "push_icon",
    ]
    for name in fields:
        message = Message(workspace=workspace_for_tests(), name="m", **{name: bad})
        with pytest.raises(ValidationError) as refused:
            message.full_clean()
        assert name in refused.value.message_dict
        assert any("{% include %}" in m for m in refused.value.message_dict[name])
    Message(
        workspace=workspace_for_tests(),
        name="ok",
        email_subject="{{ first_name|default:'Hi' }}",
        email_html="<p>{% if first_name %}Hi {{ first_name|title }}{% endif %}</p>",
        # A link may carry merge fields, written without spaces (it must also be a valid URL).
        push_url="https://shop.example/?ref={{email|urlencode}}",
    ).full_clean()


def test_the_message_editor_shows_the_reason_and_saves_nothing(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/delivery/message/add/",
        {
            "name": "include",
            "purpose": "marketing",
            "email_subject": "Hi",
            "email_html": "<p>Hi</p>\n{% include 'admin/base.html' %}",
            "whatsapp_language": "en",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Line 2: the tag {% include %} is not allowed" in page
    assert not Message.objects.filter(name="include").exists()


ALLOWED = [
    "plain text & more <b>",
    "Hi {{ first_name }}!",
    "{% if first_name %}Hi {{ first_name|title }}{% else %}Hi there{% endif %}",
    "{% with name=first_name|default:'friend' %}Hi {{ name|upper }}{% endwith %}",
    "{# a note #}{% comment %}hidden{% endcomment %}{{ shop|lower }}",
    "{% firstof nickname first_name 'friend' %}, {{ shop|truncatechars:6 }}",
    "{{ shop|truncatewords:1 }} {{ shop|cut:' ' }} {{ shop|capfirst }} {{ shop|length }}",
    "{{ shop|slugify }} {{ email|urlencode }} {{ shop|wordcount }} {{ missing|yesno:'y,n' }}",
    "{{ missing|default_if_none:'x' }}{{ lines|linebreaksbr }}{{ html|striptags }}",
    "{% spaceless %}<p> {{ first_name }} </p>{% endspaceless %}{% templatetag openblock %}",
    "{% verbatim %}{{ not_a_field }}{% endverbatim %} item{{ count|pluralize }}",
]
FIELDS = {
    "first_name": "zoë <&> O'Brien",
    "shop": "Shop & Co here",
    "email": "a+b@example.com",
    "lines": "one\ntwo",
    "html": "<b>bold</b>",
    "count": "2",
}


@pytest.mark.parametrize("source", ALLOWED)
@pytest.mark.parametrize("autoescape", [True, False])
def test_the_allowed_subset_renders_as_the_project_engine_did(
    source: str, autoescape: bool
) -> None:
    # The project's engine is the reference for what these templates rendered before.
    wrapped = source if autoescape else f"{{% autoescape off %}}{source}{{% endautoescape %}}"
    before = engines["django"].from_string(wrapped).render(FIELDS)
    after = marketer_template_render(
        marketer_template_compile(source), FIELDS, autoescape=autoescape
    )
    assert after == before
    assert type(after) is str  # never marked safe: a page showing it escapes it


def test_the_allow_lists_are_the_only_tags_and_filters() -> None:
    template = marketer_template_compile("")
    engine = template.engine
    assert set(engine.template_builtins[0].tags) == set(ALLOWED_TAGS)
    assert set(engine.template_builtins[0].filters) == set(ALLOWED_FILTERS)
    assert len(engine.template_builtins) == 1 and engine.template_libraries == {}
    assert engine.loaders == []


def test_a_render_that_fails_on_one_value_says_so() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(MarketerTemplateError, match="could not be rendered: boom"):
        marketer_template_render(
            marketer_template_compile("{{ x|upper }}"), {"x": Hostile()}, autoescape=False
        )


def test_the_merge_fast_path_leaves_a_bad_template_to_the_engine() -> None:
    with pytest.raises(MarketerTemplateError, match="include"):
        merge_template_compile(source='Hi {% include "nope.html" %}')
    # `{{ _x }}` is not a variable the engine accepts, so the fast path must not substitute it.
    with pytest.raises(MarketerTemplateError, match="underscores"):
        merge_template_compile(source="Hi {{ _x }}")


# --- a template stored before the rules, at send time -------------------------------------------

STORED_BAD = '{% include "nope.html" %}'


def _failed_with_reason(outcomes: list[Any], ids: list[int]) -> None:
    assert [o.delivery_id for o in outcomes] == ids
    assert all(isinstance(o, Failed) and o.code == TEMPLATE_INVALID for o in outcomes)
    assert all("{% include %} is not allowed" in o.text for o in outcomes)


def test_a_stored_bad_sms_fails_each_delivery_without_calling_twilio(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    sender = TwilioSmsSender(
        client=twilio_client(
            account_sid=twilio_fake.account_sid,
            auth_token=twilio_fake.auth_token,
            base_url=twilio_fake.url,
            timeout_s=2.0,
        ),
        limiter=fast_limiter,
        status_callback_url="",
        sleep=lambda s: None,
    )
    messages = [
        OutboundMessage(delivery_id=i, to=f"+1415555010{i}", merge_fields={"first_name": "A"})
        for i in (1, 2)
    ]
    _failed_with_reason(
        sender.send_batch(content=SmsContent(text=STORED_BAD), messages=messages), [1, 2]
    )
    assert twilio_fake.received == []


@pytest.fixture
def vapid() -> Iterator[Vapid02]:
    push_host_backoff_clear()
    key = Vapid02()
    key.generate_keys()
    yield key
    push_host_backoff_clear()


def test_a_stored_bad_push_fails_each_delivery_without_pushing(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    messages = []
    for i in (1, 2):
        sub = push_fake.subscription_create()
        messages.append(
            OutboundMessage(
                delivery_id=i,
                to=sub["endpoint"],
                merge_fields={"first_name": "ann"},
                push_keys=PushKeys(**sub["keys"]),
            )
        )
    sender = WebPushSender(vapid=vapid, subject="mailto:ops@example.com")
    content = PushContent(title="Hi", body=STORED_BAD, url="", icon="", ttl_s=60)
    _failed_with_reason(sender.send_batch(content=content, messages=messages), [1, 2])
    assert push_fake.pushes == []
    # The same sender still pushes a valid message.
    ok = PushContent(title="Hi {{ first_name|upper }}", body="b", url="", icon="", ttl_s=60)
    sent = sender.send_batch(content=ok, messages=messages[:1])
    assert [type(o) for o in sent] == [Sent]
    assert json.loads(push_fake.pushes[0].payload)["title"] == "Hi ANN"


@pytest.fixture
def graph(settings: Any) -> Iterator[GraphFake]:
    with GraphFake() as fake:
        settings.SOCIAL_GRAPH_BASE_URL = fake.url
        settings.WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
        settings.WHATSAPP_ACCESS_TOKEN = "wa-test-token"
        yield fake


def test_whatsapp_parameters_render_as_plain_text_and_a_bad_one_fails_the_batch(
    graph: GraphFake,
) -> None:
    sender = WhatsAppSender()
    messages = [
        OutboundMessage(
            delivery_id=1, to="+33612340000", merge_fields={"first_name": "o'brien & co"}
        )
    ]
    good = WhatsAppContent(
        template="outage_notice", language="en", parameters=("{{ first_name|title }}",)
    )
    assert [type(o) for o in sender.send_batch(content=good, messages=messages)] == [Sent]
    (request,) = graph.requests_to("/106540352242922/messages")
    parameters = request.json()["template"]["components"][0]["parameters"]
    # A parameter is text, not HTML: nothing escaped.
    assert parameters == [{"type": "text", "text": "O'Brien & Co"}]
    bad = WhatsAppContent(template="outage_notice", language="en", parameters=(STORED_BAD,))
    _failed_with_reason(sender.send_batch(content=bad, messages=messages), [1])
    assert len(graph.requests_to("/106540352242922/messages")) == 1


@pytest.fixture
def sendgrid(sendgrid_fake: SendGridFake, settings: Any) -> Iterator[SendGridFake]:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
    }
    channel_sender.cache_clear()
    yield sendgrid_fake
    channel_sender.cache_clear()


def test_a_chunk_of_a_stored_bad_email_records_each_failure_and_carries_on(
    sendgrid: SendGridFake,
) -> None:
    # Saved before the rules: create() runs no validator, as rows from before did not.
    broken = make_message(name="broken", email_html="<p>Hi</p>{% load static %}")
    fine = make_message(name="fine")
    contacts = [granted_contact() for _ in range(2)]
    ids = plan(broken, contacts) + plan(fine, contacts)
    enqueue_now(ids)
    report = deliveries_send_chunk(channel=Channel.EMAIL, ids=ids)
    assert (report.claimed, report.failed, report.sent) == (4, 2, 2)
    failed = Delivery.objects.filter(message=broken)
    assert {d.status for d in failed} == {S.FAILED}
    assert {d.error_code for d in failed} == {TEMPLATE_INVALID}
    assert all("{% load %} is not allowed" in d.error_text for d in failed)
    assert {d.status for d in Delivery.objects.filter(message=fine)} == {S.SENT}
    assert sorted(p.to[0] for p in sendgrid.personalizations) == sorted(
        str(c.email) for c in contacts
    )
