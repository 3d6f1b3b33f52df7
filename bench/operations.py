"""What the benchmark measures: each operation through the real code, against the plainest SQL for the same answer.

Each Operation has `run` (the project's code: the API through DRF's test client with token auth, or a selector)
and `baseline` (the plain query or raw SQL giving the same rows or figures). Both are timed interleaved, run and
baseline in turn, so a drift of the machine affects both alike; the median of the repeats after a warm-up is
reported. Query counts and peak memory (tracemalloc) come from separate single runs, so counting and tracing
never slow the timed runs.
"""

import os
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from unittest import mock

from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve
from knox.models import AuthToken
from rest_framework.test import APIClient

from bench.world import REPORT_PERIOD
from colocation.models import Pilot, User
from consent.access import firewall
from consent.access.log import verify_chain
from consent.models import ConsentRecord, Decline, Discharge, Referral, VoluntarinessCheck, Withdrawal

PAGE = 50
# Chain verification's target: at least this many events a second. Its baseline is the time that rate allows.
VERIFY_TARGET_EVENTS_PER_SECOND = 250_000
LIST_ORDER = ("-referred_on", "-created_at", "pk")


class NotAvailable(Exception):
    """An operation whose endpoint is not in this checkout yet."""


@dataclass
class Operation:
    name: str
    description: str
    run: Callable[[], object]
    baseline: Callable[[], object] | None
    baseline_description: str
    target_ratio: float | None = None
    target: str = ""
    # Slow operations (whole-chain verification, a pilot-year report) are repeated fewer times.
    slow: bool = False
    extra: dict = field(default_factory=dict)
    # Untimed preparation before the operation is first run in a world (writes need fresh referrals).
    setup: Callable[[], None] | None = None
    # Untimed, after it was measured in a world (the baseline writes' skipped upkeep, made).
    teardown: Callable[[], None] | None = None


@dataclass
class Subject:
    """Who and what the operations are about, looked up once in each world."""

    therapist: User
    token: str
    referral_id: uuid.UUID
    provider_id: int
    pilot: Pilot
    reviewer_token: str
    # Who the writes are made as: a colleague at the same provider, so the intakes of every run (a pool of 200
    # and the timed ones) never grow the subject's caseload, and the reads stay those of a typical therapist.
    writer_token: str


def subject() -> Subject:
    # therapist001 is a typical therapist: about N/500 referrals granted directly, none through a group.
    # (In a world too small for everyone to have referrals, the first therapist who has any.)
    first_recorder = Referral.objects.order_by("recorded_by_id").values_list("recorded_by_id", flat=True).first()
    therapist = User.objects.select_related("staff_profile__organisation", "staff_profile__team").get(pk=first_recorder)
    provider_id = therapist.staff_profile.organisation_id
    first = Referral.objects.filter(recorded_by_id=therapist.pk).order_by(*LIST_ORDER).values_list("pk", flat=True).first()
    pilot = Pilot.objects.filter(sites__provider_id=provider_id).distinct().get()
    reviewer = User.objects.get(username="reviewer-bacp")
    colleague = (
        Referral.objects.filter(provider_id=provider_id)
        .exclude(recorded_by_id=therapist.pk)
        .order_by("recorded_by_id")
        .values_list("recorded_by_id", flat=True)
        .first()
    )
    writer = User.objects.get(pk=colleague) if colleague is not None else therapist
    return Subject(
        therapist=therapist,
        token=AuthToken.objects.create(user=therapist, expiry=None)[1],  # knox keeps only hashes: a fresh one
        referral_id=first,
        provider_id=provider_id,
        pilot=pilot,
        reviewer_token=AuthToken.objects.create(user=reviewer, expiry=None)[1],
        writer_token=AuthToken.objects.create(user=writer, expiry=None)[1],
    )


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _ok(response, expected: int = 200):
    if response.status_code != expected:
        raise RuntimeError(f"{response.status_code} from {response.request['PATH_INFO']}: {response.content[:300]!r}")
    return response


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# ---- raw SQL baselines ----------------------------------------------------------------------------------------


def _raw_list(therapist_id: int) -> list[tuple]:
    """The therapist's count and first page straight from the tables, through the indexed recorded_by FK."""
    from colocation.models import Site
    from consent.models import Client

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {_table(Referral)} WHERE recorded_by_id = %s", [therapist_id])
        cursor.fetchone()
        cursor.execute(
            f"SELECT r.id, r.referred_on, r.source_of_referral, r.how_heard, r.pathway, r.status, r.created_at, r.updated_at,"
            f" c.id, c.local_reference, c.nhs_number, c.year_of_birth, s.id, s.name"
            f" FROM {_table(Referral)} r JOIN {_table(Client)} c ON c.id = r.client_id JOIN {_table(Site)} s ON s.id = r.site_id"
            f" WHERE r.recorded_by_id = %s ORDER BY r.referred_on DESC, r.created_at DESC, r.id LIMIT {PAGE}",
            [therapist_id],
        )
        return cursor.fetchall()


def _raw_detail(referral_id: uuid.UUID) -> tuple:
    """One referral with its client, site, discharge, decline and records: four plain queries."""
    from colocation.models import Site
    from consent.models import Client, ConsentTemplate

    pk = referral_id.hex if connection.vendor == "sqlite" else referral_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.*, c.*, s.id, s.name, d.discharged_on, d.reason, x.declined_on"
            f" FROM {_table(Referral)} r JOIN {_table(Client)} c ON c.id = r.client_id JOIN {_table(Site)} s ON s.id = r.site_id"
            f" LEFT JOIN {_table(Discharge)} d ON d.referral_id = r.id LEFT JOIN {_table(Decline)} x ON x.referral_id = r.id"
            f" WHERE r.id = %s",
            [pk],
        )
        row = cursor.fetchone()
        cursor.execute(
            f"SELECT k.*, t.code, t.version, t.language, t.body_sha256 FROM {_table(ConsentRecord)} k"
            f" JOIN {_table(ConsentTemplate)} t ON t.id = k.template_id WHERE k.referral_id = %s ORDER BY k.given_at, k.id",
            [pk],
        )
        consents = cursor.fetchall()
        cursor.execute(f"SELECT * FROM {_table(Withdrawal)} WHERE referral_id = %s ORDER BY withdrawn_at, id", [pk])
        withdrawals = cursor.fetchall()
        cursor.execute(f"SELECT * FROM {_table(VoluntarinessCheck)} WHERE referral_id = %s ORDER BY checked_at, id", [pk])
        return row, consents, withdrawals, cursor.fetchall()


# ---- the operations ---------------------------------------------------------------------------------------------


def operations(s: Subject) -> list[Operation]:
    """Every operation measured, in the order they are run."""
    return [*_list_operations(s), *_detail_operations(s), _report_operation(s), *_write_operations(s), _verify_operation(s)]


def _same_rows(selector_list, plain_list, raw_list, api_list) -> None:
    """Each baseline must give the operation's answer, or its ratio means nothing."""
    count, page = selector_list()
    plain_count, plain_page = plain_list()
    raw_ids = [str(uuid.UUID(str(row[0]))) for row in raw_list()]
    listed = api_list().json()
    if (count, [r.pk for r in page]) != (plain_count, [r.pk for r in plain_page]):
        raise RuntimeError("The plain selector's rows differ from the firewall's.")
    if [str(r.pk) for r in page] != raw_ids:
        raise RuntimeError("The raw list's rows differ from the firewall's.")
    if (listed["count"], [row["id"] for row in listed["results"]]) != (count, [str(r.pk) for r in page]):
        raise RuntimeError("The API's list differs from the selector's.")


def _list_operations(s: Subject) -> list[Operation]:
    therapist, client, list_url = s.therapist, _client(s.token), "/api/v1/referrals/"

    def selector_list():
        visible = firewall.referrals_visible_to(therapist).order_by(*LIST_ORDER)
        return visible.count(), list(visible[:PAGE])

    def plain_list():
        plain = Referral.objects.filter(recorded_by_id=therapist.pk).order_by(*LIST_ORDER)
        return plain.count(), list(plain[:PAGE])

    def raw_list():
        return _raw_list(therapist.pk)

    def api_list():
        return _ok(client.get(list_url))

    def api_list_unlogged():
        # Only the logging of the rows shown is switched off; everything else of the request is the same.
        with mock.patch.object(firewall, "record_listed", lambda context, rows: None):
            return _ok(client.get(list_url))

    return [
        Operation("selector_list", "firewall.referrals_visible_to(therapist): count + page of 50 (ORM)", selector_list,
                  plain_list, "Referral.objects.filter(recorded_by=therapist): count + page of 50 (ORM, index on the "
                  "recorder and the list order)", target_ratio=2.0, target="at most 2x the plain indexed query, 2 queries",
                  setup=lambda: _same_rows(selector_list, plain_list, raw_list, api_list)),
        Operation("api_list", "GET /api/v1/referrals/ as the therapist (token auth, firewall, serializer, access log)",
                  api_list, raw_list, "raw SQL: count + the same 50 rows with client and site",
                  target="reported (ms, queries, ratio to the bare selector)"),
        Operation("access_logging", "GET /api/v1/referrals/ with its 50 access events", api_list, api_list_unlogged,
                  "the same request with firewall.record_listed patched out (bench only)", target_ratio=1.2,
                  target="at most 1.2x the list without logging"),
    ]  # fmt: skip


def _detail_operations(s: Subject) -> list[Operation]:
    therapist, client, detail_url = s.therapist, _client(s.token), f"/api/v1/referrals/{s.referral_id}/"

    def selector_detail():
        return firewall.referrals_visible_to(therapist).filter(pk=s.referral_id).first()

    def plain_detail():
        return Referral.objects.filter(pk=s.referral_id, recorded_by_id=therapist.pk).first()

    def api_detail():
        return _ok(client.get(detail_url))

    return [
        Operation("selector_detail", "firewall.referrals_visible_to(therapist).filter(pk=...).first()", selector_detail,
                  plain_detail, "Referral.objects.filter(pk=..., recorded_by=therapist).first()", target="reported"),
        Operation("api_detail", "GET /api/v1/referrals/{id}/ as the therapist (firewall, access log, records)",
                  api_detail, lambda: _raw_detail(s.referral_id),
                  "raw SQL: the referral, client, site, discharge, decline and its records", target="reported"),
    ]  # fmt: skip


def _verify_operation(s: Subject) -> Operation:
    return Operation(
        "verify_chain", "verify_chain of the therapist's provider (one hash-chain, every event)",
        lambda: verify_chain(organisation_ids=[s.provider_id]), None,
        f"the time {VERIFY_TARGET_EVENTS_PER_SECOND:,} events/s would allow", target_ratio=1.0,
        target=f"at least {VERIFY_TARGET_EVENTS_PER_SECOND:,} events/s, memory flat in the number of events", slow=True,
    )  # fmt: skip


def _report_operation(s: Subject) -> Operation:
    """The pilot-year compliance report through the API, against bare aggregate SQL for the same figures."""
    from bench import report_sql

    path = f"/api/v1/pilots/{s.pilot.pk}/compliance-report/"
    client = _client(s.reviewer_token)

    def api_report():
        try:
            resolve(path)
        except Resolver404:
            raise NotAvailable(f"{path} is not routed in this checkout") from None
        # Cold every time: the disclosure audit cached for an unchanged pilot (consent.reports.audit) is dropped,
        # so each run costs what the first report after any write to the pilot costs.
        cache.clear()
        return _ok(client.get(path, {"period": REPORT_PERIOD}))

    def same_answer():
        differences = report_sql.mismatches(s.pilot.pk, REPORT_PERIOD)
        if differences:
            raise RuntimeError("The bare SQL and the report disagree: " + "; ".join(differences[:10]))

    return Operation(
        "api_compliance_report", f"GET {path}?period={REPORT_PERIOD} as a reviewer (pilot-year, suppressed, no cached audit)", api_report,
        lambda: report_sql.figures(s.pilot.pk, REPORT_PERIOD), "bare aggregate SQL for the same figures",
        target_ratio=2.0, target="at most 2x the bare aggregate SQL and under 0.5 s (1M, PostgreSQL)", slow=True,
        setup=same_answer,
    )  # fmt: skip


def _without_upkeep(write: Callable[[], object], skipped: list) -> Callable[[], object]:
    """The same write with what it keeps for the report (the flags row, the lattice cells) patched out (bench only).

    Each call skipped is noted in `skipped` and made afterwards, untimed (`_make_skipped`), so the world stays as
    the services leave it and the recounts still pass on it.
    """

    def unkept():
        with mock.patch(
            "consent.services.refresh_report_rows", lambda referral_id, **kwargs: skipped.append((referral_id, kwargs))
        ):
            return write()

    return unkept


def _make_skipped(skipped: list) -> Callable[[], None]:
    def make():
        from consent.lattice_cells import refresh_report_rows

        while skipped:
            referral_id, kwargs = skipped.pop(0)
            with transaction.atomic():
                refresh_report_rows(referral_id, **kwargs)

    return make


def _write_operations(s: Subject) -> list[Operation]:
    """Intake, consent and a voluntariness check through the API as a therapist: what each write costs.

    No baseline in the same run: a write path is compared with the same operation measured on an earlier
    commit (the issue's bound is what it cost before). Each consent needs a referral awaiting consent, so a
    pool of fresh intakes is made, untimed, before the first run.
    """
    from colocation.models import Site
    from consent.models import ConsentTemplate

    client = _client(s.writer_token)
    site_id = Site.objects.filter(provider_id=s.provider_id).order_by("pk").values_list("pk", flat=True).first()
    template_id = ConsentTemplate.objects.order_by("-version", "pk").values_list("pk", flat=True).first()
    pool: list[str] = []
    acknowledgements = dict.fromkeys(("attendance_is_optional", "no_effect_on_benefits", "service_separate_from_jobcentre",
                                      "nothing_shared_with_jobcentre", "free_to_withdraw"), True)  # fmt: skip

    def intake():
        from django.utils import timezone

        body = {"client": {"local_reference": f"BENCH-{uuid.uuid4().hex[:12]}"}, "site": site_id,
                "referred_on": timezone.localdate().isoformat(), "source_of_referral": "B1",
                "how_heard": "leaflet_or_poster", "pathway": "self_referral"}  # fmt: skip
        return _ok(client.post("/api/v1/referrals/", body, format="json"), 201).json()["id"]

    def fill_pool():
        # Enough for the untimed run, the warm-up and up to 95 timed runs of the consent and of its baseline.
        pool.extend(intake() for _ in range(200))

    def consent():
        from django.utils import timezone

        body = {"template": template_id, "method": "verbal", "given_at": timezone.now().isoformat(),
                "scopes": ["treatment"], "acknowledgements": acknowledgements}  # fmt: skip
        return _ok(client.post(f"/api/v1/referrals/{pool.pop()}/consents/", body, format="json"), 201)

    def check():
        from django.utils import timezone

        body = {"checked_at": timezone.now().isoformat(), "stage": "intake", "told_attendance_required": False,
                "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
                "employment_goal_raised_by": "nobody"}  # fmt: skip
        return _ok(client.post(f"/api/v1/referrals/{pool[0]}/voluntariness-checks/", body, format="json"), 201)

    compared = (
        "the same request with refresh_report_rows (flags row and lattice cells) patched out (and bench/results/before-*.json)"
    )
    target = "at most 1.2x the same write without the report's upkeep (and what it cost before)"
    skipped: list = []
    catch_up = _make_skipped(skipped)
    return [
        Operation("write_intake", "POST /api/v1/referrals/ as the therapist (client, referral, grants, event)", intake,
                  _without_upkeep(intake, skipped), compared, target_ratio=1.2, target=target, teardown=catch_up),
        Operation("write_consent", "POST /api/v1/referrals/{id}/consents/ as the therapist", consent,
                  _without_upkeep(consent, skipped), compared, target_ratio=1.2, target=target, setup=fill_pool,
                  teardown=catch_up),
        Operation("write_check", "POST /api/v1/referrals/{id}/voluntariness-checks/ as the therapist", check,
                  _without_upkeep(check, skipped), compared, target_ratio=1.2, target=target, setup=fill_pool,
                  teardown=catch_up),
    ]  # fmt: skip


# ---- measuring ------------------------------------------------------------------------------------------------


def queries_of(fn) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured.captured_queries)


def instrumented(fn) -> tuple[object, int, float]:
    """One untimed run: its result, its query count and its peak Python memory in MB (tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with CaptureQueriesContext(connection) as captured:
            result = fn()
        return result, len(captured.captured_queries), tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (verification's worker processes)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def timed(fn) -> tuple[float, float]:
    """Wall-clock ms, and the CPU ms of this process and its workers (which on a shared machine shows what the wall
    clock hides)."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    fn()
    return (time.perf_counter() - started) * 1000, (_cpu_seconds() - cpu) * 1000


def medians(op: Operation, repeat: int, warmup: int) -> dict:
    """Median ms of the operation and of its baseline, run in turn after the warm-up, wall clock and CPU."""
    for _ in range(warmup):
        op.run()
        if op.baseline:
            op.baseline()
    runs, baselines = [], []
    for _ in range(repeat):
        runs.append(timed(op.run))
        if op.baseline:
            baselines.append(timed(op.baseline))

    def median(samples, i):
        return statistics.median(sample[i] for sample in samples) if samples else None

    return {
        "median_ms": median(runs, 0),
        "baseline_ms": median(baselines, 0),
        "cpu_ms": median(runs, 1),
        "baseline_cpu_ms": median(baselines, 1),
    }
