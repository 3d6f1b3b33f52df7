"""The firewall filters in SQL: a fixed number of queries, and on PostgreSQL a plan that uses indexes."""

import json

from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from colocation.models import Role, StaffProfile, User
from consent.access.models import ReferralGroupObjectPermission, ReferralUserObjectPermission
from consent.models import Client, Referral
from tests.conftest import api_client, give_consent, intake_check, make_referral, postgres_only

BULK_REFERRALS = 100_000
BULK_THERAPISTS = 500


def _list_queries(user) -> list[str]:
    client = api_client(user)
    client.get("/api/v1/me/")  # Warm up: the first request of an account writes no more than later ones.
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/api/v1/referrals/")
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def test_it_lists_in_a_fixed_number_of_queries_however_many_referrals_exist(world, django_assert_max_num_queries):
    for _ in range(2):
        give_consent(world.therapist, make_referral(world.therapist, world.site), world.template)
    few = len(_list_queries(world.therapist))

    for _ in range(12):
        referral = make_referral(world.therapist, world.site)
        give_consent(world.therapist, referral, world.template)
        intake_check(world.therapist, referral)
    many = len(_list_queries(world.therapist))

    assert few == many
    client = api_client(world.therapist)
    with django_assert_max_num_queries(few):
        response = client.get("/api/v1/referrals/")
    assert response.json()["count"] == 15


def test_it_counts_for_a_lead_in_the_same_number_of_queries_as_for_a_therapist(world):
    for _ in range(5):
        make_referral(world.therapist, world.site)

    assert len(_list_queries(world.lead)) == len(_list_queries(world.therapist))


# ---- PostgreSQL at national scale --------------------------------------------------------------------------


def _bulk_world(world) -> list[int]:
    """100,000 Kent referrals recorded by 500 therapists (world.therapist among them), each granted to its
    recorder and to one of two team groups, written in a few INSERT ... SELECT statements."""
    users = User.objects.bulk_create(
        [User(username=f"bulk-therapist-{n}", password="!") for n in range(BULK_THERAPISTS - 1)], batch_size=1000
    )
    teams = (world.team, world.other_team)
    StaffProfile.objects.bulk_create(
        [StaffProfile(user=u, organisation=world.kent, role=Role.THERAPIST, team=teams[n % 2]) for n, u in enumerate(users)],
        batch_size=1000,
    )
    therapist_ids = [world.therapist.pk, *(u.pk for u in users)]
    view = Permission.objects.get(codename="view_referral", content_type__app_label="consent").pk
    change = Permission.objects.get(codename="change_referral", content_type__app_label="consent").pk
    client_table, referral_table = Client._meta.db_table, Referral._meta.db_table
    user_perms, group_perms = ReferralUserObjectPermission._meta.db_table, ReferralGroupObjectPermission._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {client_table} (id, provider_id, local_reference, nhs_number, year_of_birth, created_at)
                SELECT gen_random_uuid(), %s, 'BULK-' || g, '', NULL, now() FROM generate_series(1, %s) AS g""",
            [world.kent.pk, BULK_REFERRALS],
        )
        cursor.execute(
            f"""INSERT INTO {referral_table} (id, client_id, provider_id, site_id, team_id, referred_on,
                    source_of_referral, how_heard, pathway, status, recorded_by_id, created_at, updated_at)
                SELECT gen_random_uuid(), c.id, %s, %s, (%s::bigint[])[1 + c.n %% 2], DATE '2025-01-01' + (c.n %% 600),
                       'B1', 'leaflet_or_poster', 'self_referral', 'awaiting_consent',
                       (%s::bigint[])[1 + c.n %% %s], now(), now()
                FROM (SELECT id, substr(local_reference, 6)::int AS n FROM {client_table}
                      WHERE local_reference LIKE 'BULK-%%') AS c""",
            [world.kent.pk, world.site.pk, [t.pk for t in teams], therapist_ids, len(therapist_ids)],
        )
        cursor.execute(
            f"""INSERT INTO {user_perms} (permission_id, user_id, content_object_id)
                SELECT p.id, r.recorded_by_id, r.id FROM {referral_table} r CROSS JOIN (VALUES (%s), (%s)) AS p(id)
                WHERE NOT EXISTS (SELECT 1 FROM {user_perms} u WHERE u.content_object_id = r.id)""",
            [view, change],
        )
        cursor.execute(
            f"""INSERT INTO {group_perms} (permission_id, group_id, content_object_id)
                SELECT p.id, t.group_id, r.id FROM {referral_table} r
                JOIN colocation_clinicalteam t ON t.id = r.team_id CROSS JOIN (VALUES (%s), (%s)) AS p(id)
                WHERE NOT EXISTS (SELECT 1 FROM {group_perms} g WHERE g.content_object_id = r.id)""",
            [view, change],
        )
        for table in ("colocation_user", "colocation_staffprofile", client_table, referral_table, user_perms, group_perms):
            cursor.execute(f"ANALYZE {table}")
    return therapist_ids


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def _explain(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


@postgres_only
def test_it_reads_a_therapists_list_through_indexes_among_100000_referrals(world):
    _bulk_world(world)
    referral_table = Referral._meta.db_table
    assert Referral.objects.count() == BULK_REFERRALS + 2

    queries = [
        sql for sql in _list_queries(world.therapist) if sql.lstrip().upper().startswith("SELECT") and referral_table in sql
    ]
    # The count of the page and the page itself.
    assert len(queries) == 2, queries

    for sql in queries:
        explained = _explain(sql)
        nodes = list(_plan_nodes(explained["Plan"]))
        on_referrals = [n for n in nodes if n.get("Relation Name") == referral_table]
        plan_text = json.dumps(explained["Plan"], indent=1)
        assert on_referrals, plan_text
        assert all(n["Node Type"] != "Seq Scan" for n in on_referrals), plan_text
        assert any("Index" in n["Node Type"] for n in on_referrals), plan_text
        # Not a walk of a whole index either: the referral rows read stay near the therapist's ~200.
        read = sum(n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0) for n in on_referrals)
        assert read < 2_000, plan_text
