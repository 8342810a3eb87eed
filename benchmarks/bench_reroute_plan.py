"""reroute.plan_1m_s: planning a 1,000,000-contact audience, consent-filtered, three channels,
first reachable, in keyset slices exactly as a reroute does, against a floor: one bare
INSERT ... SELECT writing the very same (message, contact, channel) rows, in the same run.

The audience is generated in SQL in its own database (continuity_bench_reroute) and kept between
runs; consent and suppressions go through the same tables the product uses.
"""

from __future__ import annotations

import resource
import time

from benchmarks._common import bench_database_prepare, emit, setup_django, sized

BENCH_DB = "continuity_bench_reroute"


def _fill_audience(n: int) -> None:
    """n contacts: ~70% email consent, ~35% SMS (with a phone), ~20% push, 2% bounced."""
    from django.db import connection

    from contacts.models import Contact

    if Contact.objects.count() == n:
        return
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE delivery_deliveryevent, delivery_delivery, contacts_consentevent, "
            "contacts_consent, contacts_suppression, contacts_pushsubscription, "
            "contacts_contacttag, contacts_contact RESTART IDENTITY CASCADE"
        )
        cur.execute(
            "INSERT INTO contacts_contact (external_id, email, phone, first_name, last_name, "
            "locale, timezone, attributes, created_at, updated_at) "
            "SELECT 'b' || g, 'b' || g || '@example.com', "
            "CASE WHEN mod(g, 20) < 7 THEN '+1555' || lpad(g::text, 7, '0') END, 'Ann', 'B', 'en', "
            "(ARRAY['Europe/London','America/New_York','Asia/Tokyo'])[1 + mod(g, 3)], '{}'::jsonb, "
            "now(), now() FROM generate_series(1, %s) g",
            [n],
        )
        for channel, condition in (
            ("email", "mod(id, 10) < 7"),
            ("sms", "mod(id, 20) < 7"),
            ("push", "mod(id, 5) = 0"),
        ):
            cur.execute(
                "INSERT INTO contacts_consent (contact_id, channel, purpose, state, updated_at) "
                "SELECT id, %s, 'marketing', 'granted', now() FROM contacts_contact "
                f"WHERE {condition}",
                [channel],
            )
        cur.execute(
            "INSERT INTO contacts_pushsubscription (contact_id, endpoint, p256dh, auth, "
            "user_agent, active, failure_count, last_failure, created_at, updated_at) "
            "SELECT id, 'http://127.0.0.1:9/push/' || id, 'k', 'a', '', true, 0, '', now(), now() "
            "FROM contacts_contact WHERE mod(id, 5) = 0"
        )
        cur.execute(
            "INSERT INTO contacts_suppression (contact_id, channel, reason, detail, created_at, "
            "active) SELECT id, 'email', 'hard_bounce', '', now(), true FROM contacts_contact "
            "WHERE mod(id, 50) = 1"
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
        cur.execute("ANALYZE contacts_contact")


def main() -> None:
    n = sized(full=1_000_000, small=5_000)
    bench_database_prepare(BENCH_DB)
    setup_django()
    from django.conf import settings
    from django.db import connection

    from contacts.models import Contact
    from delivery.materialize import PlanSpec, deliveries_plan_slice
    from delivery.models import Message

    _fill_audience(n)
    with connection.cursor() as cur:
        cur.execute("TRUNCATE delivery_deliveryevent, delivery_delivery RESTART IDENTITY CASCADE")
    message = Message.objects.create(name="bench", email_subject="s", email_text="t", sms_text="x")
    spec = PlanSpec(message_id=message.pk, purpose="marketing", channels=("push", "email", "sms"))
    settings.REROUTE_QUIET_HOURS = {}
    audience = Contact.objects.filter(erased_at__isnull=True)
    started = time.perf_counter()
    after, planned = 0, 0
    while True:
        result = deliveries_plan_slice(
            spec=spec, audience=audience, after_contact_id=after, limit=settings.REROUTE_SLICE_SIZE
        )
        if not result.contacts:
            break
        planned += sum(result.planned.values())
        after = result.last_contact_id
    plan_s = time.perf_counter() - started
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE floor_rows AS SELECT message_id, contact_id, channel "
            "FROM delivery_delivery"
        )
        cur.execute("TRUNCATE delivery_delivery RESTART IDENTITY CASCADE")
        floor_started = time.perf_counter()
        cur.execute(
            "INSERT INTO delivery_delivery (message_id, contact_id, channel, status, attempt, "
            "provider, provider_message_id, error_code, error_text, cost_units, created_at, "
            "updated_at) SELECT message_id, contact_id, channel, 'planned', 0, '', '', '', '', 1, "
            "now(), now() FROM floor_rows ON CONFLICT DO NOTHING"
        )
        floor_s = time.perf_counter() - floor_started
    emit(
        "reroute.plan_1m_s",
        plan_s,
        "s",
        floor=floor_s,
        target="plan 1,000,000 contacts (3 channels, first reachable) in under 20 s, "
        "ratio_to_floor <= 1.3",
        contacts=n,
        planned=planned,
        slice_size=settings.REROUTE_SLICE_SIZE,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


if __name__ == "__main__":
    main()
