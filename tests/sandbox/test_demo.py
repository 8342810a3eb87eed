"""The demo agency that `make run` seeds once: two client workspaces kept apart."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.utils import timezone

from campaigns.drill import outage_drill
from campaigns.models import Campaign, SocialAccount, SocialPost
from contacts.models import Consent, Contact, PushSubscription, Segment
from continuity.models import Membership, Role, Workspace
from continuity.roles import user_is_operator
from delivery.models import Message
from outages.credentials import source_secrets
from outages.models import MonitorSource
from sandbox.demo import (
    DEMO_SOURCE_SLUG,
    DEMO_WORKSPACE_SLUGS,
    DEMO_X_USERS,
    SHARED_EVERY,
    demo_seed,
)

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_the_demo_is_seeded_once_with_a_working_monitor_secret(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    info = demo_seed(contacts=300)
    assert info.created
    assert Contact.objects.count() == 300
    assert Consent.objects.filter(state="granted").exists()
    assert PushSubscription.objects.exists()
    assert Campaign.objects.filter(status="scheduled").count() == 6
    assert set(SocialPost.objects.values_list("network", flat=True)) == {
        "facebook",
        "instagram",
        "x",
    }
    source = MonitorSource.objects.get(slug=DEMO_SOURCE_SLUG)
    assert source_secrets(source=source) == [info.token_file.read_text()]
    again = demo_seed(contacts=300)
    assert not again.created
    assert Contact.objects.count() == 300
    drill = outage_drill(network="instagram", workspace=None)
    assert len(drill.campaigns) == 6
    assert sum(drill.planned.values()) > 0


def test_each_demo_workspace_has_its_own_audience_accounts_campaigns_and_messages(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    demo_seed(contacts=200)

    roma, milano = (Workspace.objects.get(slug=slug) for slug in DEMO_WORKSPACE_SLUGS)
    assert (roma.name, milano.name) == ("Trattoria Roma", "Boutique Milano")
    for workspace in (roma, milano):
        assert Contact.objects.for_workspace(workspace).count() == 100
        assert Segment.objects.for_workspace(workspace).count() == 2
        assert SocialAccount.objects.for_workspace(workspace).count() == 3
        assert Campaign.objects.for_workspace(workspace).count() == 3
        assert Message.objects.for_workspace(workspace).count() == 3
        # Every row of the workspace points at its own rows only.
        assert not SocialPost.objects.for_workspace(workspace).exclude(
            campaign__workspace=workspace
        )
        assert not SocialPost.objects.for_workspace(workspace).exclude(account__workspace=workspace)
        assert not Consent.objects.filter(contact__workspace=workspace).exclude(workspace=workspace)
    shared = set(
        Contact.objects.for_workspace(roma).exclude(email=None).values_list("email", flat=True)
    ) & set(
        Contact.objects.for_workspace(milano).exclude(email=None).values_list("email", flat=True)
    )
    assert len(shared) == 100 // SHARED_EVERY
    # Each demo X account's token is known to the sandbox X fake as its own user.
    ids = {a.x_user_id for a in SocialAccount.objects.filter(network="x")}
    assert ids == {user_id for _token, user_id, _name in DEMO_X_USERS}


def test_the_demo_admin_owns_both_workspaces_and_operates_the_install(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("ensure_demo_admin", stdout=out)
    password = out.getvalue().split("password: ")[1].split()[0]
    call_command("seed_demo", contacts=20, stdout=io.StringIO())

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and user_is_operator(admin)
    assert set(Membership.objects.filter(user=admin).values_list("workspace__slug", "role")) == {
        (slug, Role.OWNER) for slug in DEMO_WORKSPACE_SLUGS
    }
    roles = dict(
        Membership.objects.filter(user__username__in=["marco", "vera"]).values_list(
            "user__username", "role"
        )
    )
    assert roles == {"marco": Role.MARKETER, "vera": Role.VIEWER}
    assert set(
        Membership.objects.filter(user__username__in=["marco", "vera"]).values_list(
            "workspace__slug", flat=True
        )
    ) == {"trattoria-roma"}
    # The demo people sign in with the admin's password and see their one workspace.
    client = Client()
    # Through the sign-in form: axes needs the request that client.login() does not pass.
    signed_in = client.post("/admin/login/", {"username": "marco", "password": password})
    assert signed_in.status_code == 302
    page = client.get("/admin/contacts/contact/").content.decode()
    assert "Boutique Milano" not in page


def test_demo_people_seeded_without_ensure_demo_admin_are_told_how_to_get_a_password(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("seed_demo", contacts=10, stdout=out)
    assert "changepassword" in out.getvalue()
    assert not User.objects.get(username="vera").has_usable_password()
    assert not Membership.objects.filter(user__username="admin").exists()


def test_a_later_run_schedules_a_new_round_once_the_demo_campaigns_went_out(
    settings: Any, tmp_path: Any
) -> None:
    settings.VAR_DIR = tmp_path
    demo_seed(contacts=50)
    assert not demo_seed(contacts=50).rescheduled  # still due: nothing new

    Campaign.objects.update(status="published", scheduled_at=timezone.now() - timedelta(days=2))
    again = demo_seed(contacts=50)

    assert again.rescheduled and not again.created
    upcoming = Campaign.objects.filter(status="scheduled", scheduled_at__gt=timezone.now())
    assert upcoming.count() == 6
    assert SocialPost.objects.filter(campaign__in=upcoming).count() == 12
    assert not SocialPost.objects.filter(campaign__in=upcoming).exclude(
        account__workspace_id=F("campaign__workspace_id")
    )
    assert not demo_seed(contacts=50).rescheduled


def test_demo_data_passes_its_own_validation(settings: Any, tmp_path: Any) -> None:
    """A marketer can save any demo contact as it is, and no demo campaign shows what is
    missing (accounts, audience) on its page, before or after it went out."""
    import phonenumbers

    from campaigns.validation import campaign_problems

    settings.VAR_DIR = tmp_path
    demo_seed(contacts=120)
    phones = list(Contact.objects.exclude(phone=None))
    assert phones
    for contact in phones:
        contact.full_clean()
        number = phonenumbers.parse(str(contact.phone))
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    for campaign in Campaign.objects.all():
        assert campaign_problems(campaign=campaign, check_schedule=False) == [], campaign.name
        assert set(campaign.accounts.all()) == {p.account for p in campaign.posts.all()}
