"""The firewall filters in SQL: a fixed number of queries, and on PostgreSQL a plan that uses indexes."""

import json

from django.contrib.auth.models import Permission
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from colocation.models import Role, StaffProfile, User
from consent.access.caseload import rebuild_caseload
from consent.access.firewall import Purpose, referrals_visible_to
from consent.access.models import CaseloadEntry, ReferralGroupObjectPermission, ReferralUserObjectPermission
from consent.models import Client, Referral
from tests.conftest import api_client, give_consent, intake_check, make_referral, postgres_only

BULK_REFERRALS = 100_000
BULK_THERAPISTS = 500


def _queries(user, path: str, status: int = 200) -> list[str]:
    client = api_client(user)
    client.get("/api/v1/me/")  # Warm up: the first request of an account writes no more than later ones.
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == status, response.content[:300]
    return [query["sql"] for query in captured.captured_queries]


def _list_queries(user) -> list[str]:
    return _queries(user, "/api/v1/referrals/")


def _reading_referrals(queries: list[str]) -> list[str]:
    table = Referral._meta.db_table
    return [sql for sql in queries if sql.lstrip().upper().startswith("SELECT") and f'"{table}"' in sql]


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


def test_a_list_for_someone_who_may_see_nothing_costs_no_more_than_one_that_shows_rows(world):
    for _ in range(5):
        make_referral(world.therapist, world.site)
    shown = len(_list_queries(world.therapist))
    for user in (world.unassigned_therapist, world.dpo, world.reviewer, world.other_provider_therapist):
        assert len(_list_queries(user)) <= shown


def test_a_work_coachs_list_is_refused_before_any_referral_is_read(world):
    for _ in range(3):
        make_referral(world.therapist, world.site)
    assert _reading_referrals(_queries(world.work_coach, "/api/v1/referrals/", status=403)) == []
    detail = _queries(world.work_coach, f"/api/v1/referrals/{world.referral.pk}/", status=404)
    # The benefits-agency rule comes first: no permission table is even consulted...
    assert not [sql for sql in detail if "objectpermission" in sql]
    # ...and the one read of the referral, by primary key, only finds which provider's DPO hears of the attempt.
    assert all('"consent_referral"."id" =' in sql for sql in _reading_referrals(detail))


def test_a_detail_costs_the_same_however_many_referrals_the_therapist_has(world):
    give_consent(world.therapist, world.referral, world.template)
    few = len(_queries(world.therapist, f"/api/v1/referrals/{world.referral.pk}/"))
    for _ in range(10):
        give_consent(world.therapist, make_referral(world.therapist, world.site), world.template)
    assert len(_queries(world.therapist, f"/api/v1/referrals/{world.referral.pk}/")) == few


# ---- PostgreSQL at national scale --------------------------------------------------------------------------


def _bulk_world(world) -> list[int]:
    """100,000 Kent referrals recorded by 500 therapists (world.therapist among them), each granted to its
    recorder and to one of two team groups, written in a few INSERT ... SELECT statements.

    Every referral gets its view grants; change grants only world.therapist's (the ones the test checks
    for a change), which halves the rows to write and leaves the tables as large as the plans need."""
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
        # Foreign keys are deferred to the end of the test's transaction, where checking 600,000 generated rows
        # took longer than the test itself; the rows are consistent by construction, so the bulk load skips
        # the checks (a superuser's replica mode) when the database allows it.
        replica = _without_foreign_key_checks(cursor)
        cursor.execute(
            f"""INSERT INTO {client_table} (id, provider_id, local_reference, nhs_number, year_of_birth, created_at)
                SELECT gen_random_uuid(), %s, 'BULK-' || g, '', NULL, now() FROM generate_series(1, %s) AS g""",
            [world.kent.pk, BULK_REFERRALS],
        )
        cursor.execute(
            f"""INSERT INTO {referral_table} (id, client_id, provider_id, site_id, team_id, referred_on,
                    source_of_referral, how_heard, pathway, status, recorded_by_id, created_at, updated_at, record_key,
                    client_known_at_intake, intake_nhs_number)
                SELECT gen_random_uuid(), c.id, %s, %s, (%s::bigint[])[1 + c.n %% 2], DATE '2025-01-01' + (c.n %% 600),
                       'B1', 'leaflet_or_poster', 'self_referral', 'awaiting_consent',
                       (%s::bigint[])[1 + c.n %% %s], now(), now(), c.n %% 256, FALSE, ''
                FROM (SELECT id, substr(local_reference, 6)::int AS n FROM {client_table}
                      WHERE local_reference LIKE 'BULK-%%') AS c""",
            [world.kent.pk, world.site.pk, [t.pk for t in teams], therapist_ids, len(therapist_ids)],
        )
        cursor.execute(
            f"""INSERT INTO {user_perms} (permission_id, user_id, content_object_id)
                SELECT p.id, r.recorded_by_id, r.id FROM {referral_table} r CROSS JOIN (VALUES (%s), (%s)) AS p(id)
                WHERE NOT EXISTS (SELECT 1 FROM {user_perms} u WHERE u.content_object_id = r.id)
                  AND (p.id = %s OR r.recorded_by_id = %s)""",
            [view, change, view, world.therapist.pk],
        )
        cursor.execute(
            f"""INSERT INTO {group_perms} (permission_id, group_id, content_object_id)
                SELECT p.id, t.group_id, r.id FROM {referral_table} r
                JOIN colocation_clinicalteam t ON t.id = r.team_id CROSS JOIN (VALUES (%s), (%s)) AS p(id)
                WHERE NOT EXISTS (SELECT 1 FROM {group_perms} g WHERE g.content_object_id = r.id)
                  AND (p.id = %s OR r.recorded_by_id = %s)""",
            [view, change, view, world.therapist.pk],
        )
        if replica:
            cursor.execute("SET LOCAL session_replication_role = origin")
        for table in ("colocation_user", "colocation_staffprofile", client_table, referral_table, user_perms, group_perms):
            cursor.execute(f"ANALYZE {table}")
    return therapist_ids


def _without_foreign_key_checks(cursor) -> bool:
    try:
        with transaction.atomic():
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        return False
    return True


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def _explain(sql: str, params=None) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def _assert_indexed(sql: str, params=None, *, max_referral_rows: int) -> None:
    """The plan reads referrals (and the permission tables) through indexes, and only about as many as it returns."""
    explained = _explain(sql, params)
    nodes = list(_plan_nodes(explained["Plan"]))
    plan_text = f"{sql}\n{json.dumps(explained['Plan'], indent=1)}"
    referral_table = Referral._meta.db_table
    on_referrals = [n for n in nodes if n.get("Relation Name") == referral_table]
    assert on_referrals, plan_text
    assert all(n["Node Type"] != "Seq Scan" for n in on_referrals), plan_text
    assert any("Index" in n["Node Type"] or "Bitmap" in n["Node Type"] for n in on_referrals), plan_text
    large = {referral_table, Client._meta.db_table, ReferralUserObjectPermission._meta.db_table,
             ReferralGroupObjectPermission._meta.db_table}  # fmt: skip
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in large], plan_text
    # Not a walk of a whole index either: the referral rows read stay near what the user may see.
    read = sum(n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0) for n in on_referrals)
    assert read <= max_referral_rows, plan_text


@postgres_only
def test_it_reads_through_indexes_among_100000_referrals(world):
    _bulk_world(world)
    # Grants written in SQL bypass the hooks that keep caseloads: rebuilt here, as the migration's backfill does.
    rebuild_caseload()
    assert Referral.objects.count() == BULK_REFERRALS + 2
    own = Referral.objects.filter(recorded_by=world.therapist).count()
    assert 150 <= own <= 250  # ~100,000 / 500 therapists

    # The therapist's list: the page, read from the caseload's index in list order (50 referrals, not all
    # ~200 granted), and its count, from the caseload alone.
    listed = _list_queries(world.therapist)
    queries = _reading_referrals(listed)
    assert len(queries) == 1, queries
    _assert_indexed(queries[0], max_referral_rows=50)
    counts = [sql for sql in listed if "COUNT(" in sql.upper() and CaseloadEntry._meta.db_table in sql]
    assert len(counts) == 1, listed
    caseload_nodes = list(_plan_nodes(_explain(counts[0])["Plan"]))
    assert not [n for n in caseload_nodes if n["Node Type"] == "Seq Scan"], caseload_nodes

    # One of them opened: a primary-key lookup inside the same semi-join.
    some = Referral.objects.filter(recorded_by=world.therapist).exclude(pk=world.referral.pk).first()
    detail = _reading_referrals(_queries(world.therapist, f"/api/v1/referrals/{some.pk}/"))
    assert detail
    for sql in detail:
        _assert_indexed(sql, max_referral_rows=10)

    # A therapist who may see nothing among them, and each purpose's check of one referral.
    bulk_therapist = User.objects.get(username="bulk-therapist-7")
    for sql in _reading_referrals(_list_queries(bulk_therapist)):
        _assert_indexed(sql, max_referral_rows=2_000)
    checks = [
        referrals_visible_to(world.lead, Purpose.ASSIGN).filter(pk=some.pk),
        referrals_visible_to(world.therapist, Purpose.CHANGE).filter(pk=some.pk),
        referrals_visible_to(world.dpo, Purpose.SUBJECT_ACCESS).filter(pk=some.pk),
        referrals_visible_to(world.dpo, Purpose.ACCESS_HISTORY).filter(pk=some.pk),
    ]
    for queryset in checks:
        sql, params = queryset.values("pk").query.sql_with_params()
        _assert_indexed(sql, params, max_referral_rows=10)
    assert [q.exists() for q in checks] == [some.team_id == world.team.pk, True, True, True]
