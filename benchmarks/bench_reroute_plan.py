"""reroute.plan_1m_s: one outage rerouting every workspace of the install. 1,000,000 contacts
spread over 10 workspaces, 3 affected campaigns in each (each campaign's audience: its
workspace's contacts), consent-filtered, three channels, first reachable, planned in keyset
slices exactly as a reroute does (campaign_plan_spec, campaign_audience, deliveries_plan_slice),
against a floor: one bare INSERT ... SELECT writing the very same (workspace, message, contact,
channel) rows, in the same run.

The audience is generated in SQL in its own database (continuity_bench_reroute) and kept between
runs; consent and suppressions go through the same tables the product uses. Contacts are dealt to
the workspaces in turn (runs of RUN contacts), as each client's imports and sign-ups interleave
over time, so every workspace's contacts spread over the whole id range.
"""

from __future__ import annotations

import resource
import time

from benchmarks._common import bench_database_prepare, emit, setup_django, sized

BENCH_DB = "continuity_bench_reroute"
WORKSPACES = 10
CAMPAIGNS_PER_WORKSPACE = 3
# Contacts per run dealt to one workspace (an import batch). 1: dealt one by one, the worst case
# for reading one workspace's contacts, whose every heap page then holds all ten workspaces'.
RUN = 1


def _workspaces_ensure() -> list[int]:
    from continuity.models import Workspace

    return [
        Workspace.objects.get_or_create(slug=f"bench-{w}", defaults={"name": f"Bench {w}"})[0].pk
        for w in range(WORKSPACES)
    ]


def _fill_audience(n: int, workspace_ids: list[int]) -> None:
    """n contacts dealt to the workspaces in turn: ~70% email consent, ~35% SMS (with a phone),
    ~20% push, 2% bounced."""
    from django.db import connection

    from contacts.models import Contact

    per_workspace = Contact.objects.filter(workspace_id__in=workspace_ids).count()
    # The layout is part of the figure: a database filled another way is filled again.
    probe = Contact.objects.filter(external_id=f"b{RUN + 2}").values_list("workspace_id", flat=True)
    expected = workspace_ids[((RUN + 1) // RUN) % len(workspace_ids)]
    if per_workspace == n and Contact.objects.count() == n and list(probe) == [expected]:
        return
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE delivery_deliveryevent, delivery_delivery, contacts_consentevent, "
            "contacts_consent, contacts_suppression, contacts_pushsubscription, "
            "contacts_contacttag, contacts_contact RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO contacts_contact (workspace_id, external_id, email, phone, first_name, "
            "last_name, locale, timezone, attributes, created_at, updated_at) "
            "SELECT (%s::bigint[])[1 + mod((g - 1) / %s, %s)], 'b' || g, "
            "'b' || g || '@example.com', "
            "CASE WHEN mod(g, 20) < 7 THEN '+1555' || lpad(g::text, 7, '0') END, 'Ann', 'B', 'en', "
            "(ARRAY['Europe/London','America/New_York','Asia/Tokyo'])[1 + mod(g, 3)], '{}'::jsonb, "
            "now(), now() FROM generate_series(1, %s) g",
            [workspace_ids, RUN, len(workspace_ids), n],
        )
        for channel, condition in (
            ("email", "mod(id, 10) < 7"),
            ("sms", "mod(id, 20) < 7"),
            ("push", "mod(id, 5) = 0"),
        ):
            cur.execute(
                "INSERT INTO contacts_consent (workspace_id, contact_id, channel, purpose, state, "
                "updated_at) SELECT workspace_id, id, %s, 'marketing', 'granted', now() "
                f"FROM contacts_contact WHERE {condition}",
                [channel],
            )
        cur.execute(
            "INSERT INTO contacts_pushsubscription (workspace_id, contact_id, endpoint, p256dh, "
            "auth, user_agent, active, failure_count, last_failure, created_at, updated_at) "
            "SELECT workspace_id, id, 'http://127.0.0.1:9/push/' || id, 'k', 'a', '', true, 0, "
            "'', now(), now() FROM contacts_contact WHERE mod(id, 5) = 0"
        )
        cur.execute(
            "INSERT INTO contacts_suppression (workspace_id, contact_id, channel, reason, detail, "
            "created_at, active) SELECT workspace_id, id, 'email', 'hard_bounce', '', now(), true "
            "FROM contacts_contact WHERE mod(id, 50) = 1"
        )
        cur.execute("ANALYZE")
    _refresh_sendable()


def _refresh_sendable() -> None:
    """Fold consent and suppressions into Contact.sendable, as contacts.consent keeps it."""
    from django.db import connection

    from contacts.models import consent_bit

    cases = " + ".join(
        f"CASE WHEN EXISTS (SELECT 1 FROM contacts_consent k WHERE k.contact_id = c.id AND "
        f"k.channel = '{ch}' AND k.purpose = 'marketing' AND k.state = 'granted') AND NOT EXISTS "
        f"(SELECT 1 FROM contacts_suppression s WHERE s.contact_id = c.id AND s.channel = '{ch}' "
        f"AND s.active) THEN {consent_bit(ch, 'marketing')} ELSE 0 END"
        for ch in ("email", "sms", "push")
    )
    with connection.cursor() as cur:
        cur.execute(f"UPDATE contacts_contact c SET sendable = {cases}")
        # A table at rest, as autovacuum leaves one after a bulk load: its visibility map lets
        # the slice bounds be read from the index alone.
        cur.execute("VACUUM ANALYZE contacts_contact")


def _campaigns_fresh(workspace_ids: list[int]) -> list[int]:
    """CAMPAIGNS_PER_WORKSPACE affected campaigns per workspace, each with its own message and
    no segment (its audience: every contact of its workspace)."""
    from campaigns.models import Campaign
    from delivery.models import Message

    Campaign.objects.all().delete()
    Message.objects.all().delete()
    ids = []
    for workspace_id in workspace_ids:
        for c in range(CAMPAIGNS_PER_WORKSPACE):
            message = Message.objects.create(
                workspace_id=workspace_id,
                name=f"bench {c}",
                email_subject="s",
                email_text="t",
                sms_text="x",
                push_title="t",
                push_body="b",
            )
            campaign = Campaign.objects.create(
                workspace_id=workspace_id,
                name=f"bench {c}",
                status="scheduled",
                fallback_channels=["push", "email", "sms"],
                message=message,
            )
            ids.append(campaign.pk)
    return ids


def main() -> None:
    n = sized(full=1_000_000, small=5_000)
    bench_database_prepare(BENCH_DB)
    setup_django()
    from django.conf import settings
    from django.db import connection

    from campaigns.models import Campaign
    from campaigns.reroute import campaign_audience, campaign_plan_spec
    from delivery.materialize import deliveries_plan_slice

    workspace_ids = _workspaces_ensure()
    _fill_audience(n, workspace_ids)
    with connection.cursor() as cur:
        cur.execute("TRUNCATE delivery_deliveryevent, delivery_delivery RESTART IDENTITY CASCADE")
    campaign_ids = _campaigns_fresh(workspace_ids)
    # The figure measures planning itself: no quiet hours, no frequency cap (each workspace's
    # cap is empty, so the install's applies), as before workspaces.
    settings.REROUTE_QUIET_HOURS = {}
    settings.REROUTE_FREQUENCY_CAP_PER_DAY = 0
    campaigns = list(
        Campaign.objects.filter(pk__in=campaign_ids)
        .select_related("message", "segment", "workspace")
        .order_by("pk")
    )
    started = time.perf_counter()
    planned = 0
    for campaign in campaigns:
        spec = campaign_plan_spec(campaign, network="instagram")
        audience = campaign_audience(campaign)
        after = 0
        while True:
            result = deliveries_plan_slice(
                spec=spec,
                audience=audience,
                after_contact_id=after,
                limit=settings.REROUTE_SLICE_SIZE,
            )
            if not result.contacts:
                break
            planned += sum(result.planned.values())
            after = result.last_contact_id
    plan_s = time.perf_counter() - started
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE floor_rows AS SELECT workspace_id, message_id, contact_id, channel "
            "FROM delivery_delivery"
        )
        cur.execute("TRUNCATE delivery_delivery RESTART IDENTITY CASCADE")
        floor_started = time.perf_counter()
        cur.execute(
            "INSERT INTO delivery_delivery (workspace_id, message_id, contact_id, channel, status, "
            "attempt, provider, provider_message_id, error_code, error_text, cost_units, "
            "created_at, updated_at) SELECT workspace_id, message_id, contact_id, channel, "
            "'planned', 0, '', '', '', '', 1, now(), now() FROM floor_rows ON CONFLICT DO NOTHING"
        )
        floor_s = time.perf_counter() - floor_started
    emit(
        "reroute.plan_1m_s",
        plan_s,
        "s",
        floor=floor_s,
        target="plan 1,000,000 contacts over 10 workspaces, 3 affected campaigns each "
        "(3 channels, first reachable), ratio_to_floor <= 1.3",
        contacts=n,
        workspaces=len(workspace_ids),
        campaigns=len(campaigns),
        planned=planned,
        slice_size=settings.REROUTE_SLICE_SIZE,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


if __name__ == "__main__":
    main()
