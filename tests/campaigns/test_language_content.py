"""A campaign's content per language beyond the send path: each account posts its language's
variant (one post per account), previews per language, the problems list names a broken
variant, and a reroute records its plan per language with SMS segments per variant."""

from __future__ import annotations

import pytest
from django.test import TestCase, override_settings

from campaigns.content import campaign_post_request
from campaigns.language_counts import reroutes_planned_languages
from campaigns.models import CampaignPostVariant, Reroute
from campaigns.preview import campaign_fallback_previews, campaign_languages
from campaigns.reroute import campaign_plan_spec, reroute_plan_next_slice
from campaigns.validation import campaign_problems, content_language_clean
from contacts.models import Channel
from continuity.models import Workspace
from delivery.models import MessageVariant
from sandbox.graph import GraphFake
from tests.campaigns.factories import make_account, make_campaign
from tests.campaigns.helpers import claim, publish_until_settled
from tests.delivery.test_materialize import contact_with
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def italian_workspace() -> Workspace:
    workspace = workspace_for_tests()
    Workspace.objects.filter(pk=workspace.pk).update(language="it")
    workspace.refresh_from_db()
    return workspace


def _post_variant(campaign: object, language: str, text: str) -> None:
    CampaignPostVariant.objects.create(
        workspace=workspace_for_tests(), campaign=campaign, language=language, text=text
    )


def test_each_account_publishes_its_languages_post_once(graph: GraphFake) -> None:
    english_page = make_account(network="facebook", language="en")
    default_page = make_account(network="facebook")  # no language: the workspace's (it)
    german_page = make_account(network="facebook", language="de")  # no German variant
    campaign = make_campaign(
        accounts=[english_page, default_page, german_page], text="Base text", due_in_s=-1
    )
    _post_variant(campaign, "en", "Autumn sale starts now")
    _post_variant(campaign, "it", "I saldi d'autunno iniziano ora")
    posts = claim(campaign)
    publish_until_settled([p.pk for p in posts])
    assert [p.text for p in graph.posts_for(english_page.page_id)] == ["Autumn sale starts now"]
    for page in (default_page, german_page):
        assert [p.text for p in graph.posts_for(page.page_id)] == ["I saldi d'autunno iniziano ora"]


def test_a_variant_shares_the_campaigns_link_and_overrides_stay_with_the_base() -> None:
    campaign = make_campaign(overrides={"x": {"text": "Short for X"}})
    _post_variant(campaign, "en", "English text")
    english = campaign_post_request(campaign=campaign, network="x", language="en-US")
    assert (english.text, english.link) == ("English text", campaign.link)
    # No French variant and no Italian (default) one: the base, with its X override.
    assert campaign_post_request(campaign=campaign, network="x", language="fr").text == (
        "Short for X"
    )


def test_previews_show_each_languages_fallback() -> None:
    campaign = make_campaign(fallback_channels=["email", "sms"])
    assert campaign.message is not None
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="en",
        email_subject="Hello {{ first_name }}",
        email_text="Sale",
        sms_text="Sale now",
    )
    assert campaign_languages(campaign=campaign) == ["it", "en"]
    english, _ = campaign_fallback_previews(campaign=campaign, language="en")
    default, _ = campaign_fallback_previews(campaign=campaign)
    assert english[0].title == "Hello Alex"
    assert english[1].body == "Sale now"
    # The Italian default has no variant: the base content.
    assert default[0].title == "Autumn sale, Alex"


def test_a_broken_variant_template_is_a_problem_naming_its_language() -> None:
    campaign = make_campaign()
    assert campaign.message is not None
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="en",
        sms_text="Hi {% load evil %}",
    )
    problems = " ".join(campaign_problems(campaign=campaign))
    assert "The en variant's SMS text cannot be sent" in problems


def test_the_default_languages_variant_covers_a_channel_the_base_lacks() -> None:
    campaign = make_campaign(fallback_channels=["push"])
    assert campaign.message is not None
    campaign.message.push_title = ""
    campaign.message.save()
    assert any("no web push content" in p for p in campaign_problems(campaign=campaign))
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="it",
        push_title="Saldi",
        push_body="Ciao",
    )
    assert not any("no web push content" in p for p in campaign_problems(campaign=campaign))


@pytest.mark.parametrize(
    ("tag", "stored"), [("it", "it"), ("it-IT", "it"), ("EN_gb", "en"), (" de ", "de")]
)
def test_known_language_tags_are_stored_as_their_primary_subtag(tag: str, stored: str) -> None:
    assert content_language_clean(tag) == stored


@pytest.mark.parametrize("tag", ["", "xx", "english", "i", "12", "zz-ZZ"])
def test_unknown_language_tags_are_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="language"):
        content_language_clean(tag)


@override_settings(REROUTE_QUIET_HOURS={}, REROUTE_FREQUENCY_CAP_PER_DAY=0)
def test_a_reroute_records_its_plan_and_sms_segments_per_language() -> None:
    from outages.windows import outage_declare

    campaign = make_campaign(fallback_channels=["sms"], segment=None)
    assert campaign.message is not None
    # Italian: 80 characters with a capital È, so UCS-2 and two segments; English: one.
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="it",
        sms_text="È " + "a" * 78,
    )
    MessageVariant.objects.create(
        workspace=campaign.workspace, message=campaign.message, language="en", sms_text="Sale"
    )
    for locale in ("it", "it", "en", "de"):
        contact_with(Channel.SMS, email=False, push=False, locale=locale)
    spec = campaign_plan_spec(campaign, network="instagram")
    assert spec.sms_cost_units == 2  # the budget counts the dearest language
    assert spec.languages is not None and spec.languages.sms_cost == {"it": 2, "en": 1}
    window = outage_declare(network="instagram", reason="test", actor="tests")
    reroute = Reroute.objects.create(
        workspace=campaign.workspace,
        campaign=campaign,
        network="instagram",
        window=window,
        status="planning",
        policy="reroute",
    )
    with TestCase.captureOnCommitCallbacks(execute=False):
        while reroute_plan_next_slice(reroute_id=reroute.pk, send=lambda *a, **k: None):
            pass
    reroute.refresh_from_db()
    assert reroute.planned_languages == {"sms": {"it": 3, "en": 1}}
    assert reroute.sms_segments_planned == 3 * 2 + 1
    assert reroutes_planned_languages(reroutes=[reroute, reroute]) == {"sms": {"it": 6, "en": 2}}


@override_settings(REROUTE_QUIET_HOURS={}, REROUTE_FREQUENCY_CAP_PER_DAY=0)
def test_the_drill_prices_each_languages_sms_at_its_own_segments() -> None:
    from campaigns.drill import outage_drill

    campaign = make_campaign(fallback_channels=["sms"], segment=None)
    assert campaign.message is not None
    # Italian costs two segments (UCS-2, 80 characters), English one: the drill must not price
    # every SMS at the dearest language's two.
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="it",
        sms_text="È " + "a" * 78,
    )
    MessageVariant.objects.create(
        workspace=campaign.workspace, message=campaign.message, language="en", sms_text="Sale"
    )
    for locale in ("it", "en", "en", "en"):
        contact_with(Channel.SMS, email=False, push=False, locale=locale)
    drill = outage_drill(
        network="instagram", workspace=campaign.workspace, campaign_ids=[campaign.pk]
    )
    [campaign_drill] = drill.campaigns
    assert campaign_drill.planned == {"sms": 4}
    assert campaign_drill.sms_segments == 1 * 2 + 3 * 1
    assert drill.sms_segments == 5
