"""A realistic world of N referrals, built with bulk inserts (executemany on SQLite, COPY on PostgreSQL).

Four therapy providers each run one pilot of ten sites; 500 therapists in 50 teams (one clinical lead each),
a DPO per provider, work coaches at four job centres, two professional bodies. Each referral is recorded by a
therapist at one of their provider's sites, granted (view and change) to that therapist and to their team's
group through the direct-FK guardian tables, as create_referral would; then consent, intake checks,
withdrawals, declines and discharges follow in the proportions of seed_demo. About ten access events per
referral sit on each provider's hash chain in time order, hashed with consent.access.log.event_hash itself,
so verify_chain passes over the whole world.

The rows are written straight into the tables: the services would take hours at a million referrals, and
what is measured is reading, not writing. Nothing here is a shortcut the measured code takes.
"""

import json
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction

from colocation.models import Cadence, ClinicalTeam, Organisation, OrganisationKind, Pilot, Role, Site, StaffProfile, User
from consent.access import heads
from consent.access.caseload import rebuild_caseload
from consent.access.log import GENESIS_HASH, HASHED_FIELDS, event_hash
from consent.access.models import (
    AccessEvent,
    Action,
    ChainHead,
    Outcome,
    ReferralGroupObjectPermission,
    ReferralUserObjectPermission,
)
from consent.models import (
    ACKNOWLEDGEMENTS,
    Client,
    ConsentRecord,
    ConsentTemplate,
    Decline,
    Discharge,
    Referral,
    VoluntarinessCheck,
    Withdrawal,
)
from consent.receipts import seal
from consent.reports.cells import count_if_changed
from consent.voluntariness_flags import rebuild_voluntariness_flags

# Bumped whenever the shape of the world changes, so a stored world of an older shape is rebuilt.
WORLD_VERSION = 4
PROVIDERS, SITES_PER_PROVIDER, TEAMS, THERAPISTS = 4, 10, 50, 500
FIRST_DAY, LAST_DAY = date(2024, 11, 1), date(2026, 10, 31)
WORLD_END = datetime(2026, 11, 20, tzinfo=UTC)
PILOT_STARTS, PILOT_ENDS = date(2024, 11, 1), date(2026, 12, 31)
# The pilot year the compliance report is measured on.
REPORT_PERIOD = "2025"
EVENTS_PER_REFERRAL = 10
CHUNK = 50_000
BENCH_PASSWORD = "bench-pass-2026"
MARKER_TABLE = "bench_world"


def log(message: str) -> None:
    print(f"  [world] {message}", flush=True)


# ---- bulk insertion -----------------------------------------------------------------------------------------


class Loader:
    """Rows straight into tables, in the form each database stores them (as Django would have written them)."""

    def __init__(self):
        self.vendor = connection.vendor
        if self.vendor == "sqlite":
            # Django stores UUIDs as 32 hex digits and times as naive UTC text on SQLite.
            self.uuid = lambda value: value.hex if value is not None else None
            self.time = lambda value: str(value.astimezone(UTC).replace(tzinfo=None))
            self.date = lambda value: value.isoformat()
        else:
            self.uuid = self.time = self.date = lambda value: value

    def insert(self, model, fields: list[str], rows: list[tuple]) -> None:
        table = model._meta.db_table
        columns = [model._meta.get_field(name).column for name in fields]
        if not rows:
            return
        raw = connection.connection
        if self.vendor == "sqlite":
            placeholders = ", ".join("?" * len(columns))
            raw.executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({placeholders})', rows)
        else:
            with raw.cursor() as cursor, cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)


def _prepare_connection() -> None:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # A benchmark world can be rebuilt: durability is not needed while loading it.
            cursor.execute("PRAGMA synchronous = OFF")
        else:
            # Foreign keys are consistent by construction; skipping their per-row triggers makes COPY several
            # times faster (the append-only triggers only refuse UPDATE and DELETE, never INSERT).
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("SET synchronous_commit = off")


def _restore_connection() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA synchronous = FULL")
        else:
            cursor.execute("SET session_replication_role = DEFAULT")
            # Statistics for the planner and a visibility map for index-only scans: what autovacuum would have
            # done after a load like this one (it also vacuums insert-only tables since PostgreSQL 13).
            cursor.execute("VACUUM ANALYZE")


# ---- the marker that says which world a database holds ----------------------------------------------------


def stored_world() -> dict | None:
    """The marker of the world in the current database, or None if there is none."""
    with connection.cursor() as cursor:
        if MARKER_TABLE not in connection.introspection.table_names(cursor):
            return None
        cursor.execute(f"SELECT version, referrals, built_seconds FROM {MARKER_TABLE}")
        row = cursor.fetchone()
    return {"version": row[0], "referrals": row[1], "built_seconds": row[2]} if row else None


def _mark(referrals: int, seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {MARKER_TABLE} (version integer, referrals integer, built_seconds real)")
        cursor.execute(f"INSERT INTO {MARKER_TABLE} VALUES (%s, %s, %s)", [WORLD_VERSION, referrals, seconds])


# ---- the people and places --------------------------------------------------------------------------------


def _nhs_number(rng: random.Random) -> str:
    """A ten-digit number with a valid modulus-11 check digit."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def _people_and_places() -> dict:
    """The providers, sites, pilots, teams and staff every referral is made among, and the consent template."""
    password = make_password(BENCH_PASSWORD)  # hashed once: 560 PBKDF2 runs would take minutes
    providers, agencies, bodies, libraries = _organisations()
    sites_of = _sites_and_pilots(providers, agencies, bodies, libraries)
    teams = _teams(providers)
    users = _staff(password, providers, agencies, bodies, teams)
    template = ConsentTemplate.objects.create(
        code="colocation-intake", version=1, language="en", title="Talking therapies at a co-located clinic",
        effective_from=FIRST_DAY - timedelta(days=30),
        body="Therapy here is voluntary, separate from the job centre, and nothing is shared with it.",
    )  # fmt: skip
    return {
        "providers": providers,
        "sites_of": sites_of,
        "teams": teams,
        "therapists": users[:THERAPISTS],
        "leads": users[THERAPISTS : THERAPISTS + TEAMS],
        "dpos": users[THERAPISTS + TEAMS : THERAPISTS + TEAMS + PROVIDERS],
        "work_coaches": users[THERAPISTS + TEAMS + PROVIDERS : THERAPISTS + TEAMS + 2 * PROVIDERS],
        "template": template,
    }


def _organisations() -> tuple[list, list, list, Organisation]:
    """The therapy providers, their job centres, the professional bodies and the libraries that host sites."""
    providers = [Organisation.objects.create(name=f"Provider {p + 1} talking therapies", kind=OrganisationKind.THERAPY_PROVIDER,
                                             ods_code=f"R{p + 1:02d}") for p in range(PROVIDERS)]  # fmt: skip
    agencies = [
        Organisation.objects.create(name=f"Jobcentre Plus {p + 1}", kind=OrganisationKind.BENEFITS_AGENCY)
        for p in range(PROVIDERS)
    ]
    bodies = [Organisation.objects.create(name=name, kind=OrganisationKind.PROFESSIONAL_BODY) for name in ("BACP", "UKCP")]
    libraries = Organisation.objects.create(name="County libraries", kind=OrganisationKind.OTHER)
    return providers, agencies, bodies, libraries


def _sites_and_pilots(providers, agencies, bodies, libraries) -> dict[int, list[Site]]:
    """Each provider's ten sites and the pilot that runs them; returns the sites by provider number."""
    venues = [
        "jobcentre",
        "jobcentre",
        "jobcentre",
        "jobcentre",
        "gp_surgery",
        "gp_surgery",
        "community_centre",
        "library",
        "library",
        "other",
    ]
    sites = Site.objects.bulk_create(
        [
            Site(
                name=f"Provider {p + 1} site {s + 1}", venue_kind=venues[s],
                host_organisation=agencies[p] if venues[s] == "jobcentre" else libraries, provider=providers[p],
                postcode_district=f"CT{s + 1}", active_from=FIRST_DAY, separate_room_or_floor=True,
                separate_entrance=s % 3 != 0, separate_signage_and_publicity=True, separate_it_and_records=True,
                no_benefits_agency_staff_in_sessions=True, separation_last_reviewed=date(2025, 6, 1),
            )
            for p in range(PROVIDERS)
            for s in range(SITES_PER_PROVIDER)
        ]
    )  # fmt: skip
    sites_of = {p: sites[p * SITES_PER_PROVIDER : (p + 1) * SITES_PER_PROVIDER] for p in range(PROVIDERS)}
    for p in range(PROVIDERS):
        pilot = Pilot.objects.create(name=f"Pilot {p + 1}", starts_on=PILOT_STARTS, ends_on=PILOT_ENDS, cadence=Cadence.QUARTERLY)
        pilot.sites.set(sites_of[p])
        pilot.overseen_by.set(bodies)
    return sites_of


def _teams(providers) -> list[ClinicalTeam]:
    """The clinical teams, each with the group its referrals are granted to."""
    groups = Group.objects.bulk_create([Group(name=f"clinical-team:bench:{t + 1}") for t in range(TEAMS)])
    return ClinicalTeam.objects.bulk_create(
        [ClinicalTeam(organisation=providers[t % PROVIDERS], name=f"Team {t + 1}", group=groups[t]) for t in range(TEAMS)]
    )


def _staff(password: str, providers, agencies, bodies, teams) -> list[User]:
    """Therapists, clinical leads (members of their team's group), DPOs, work coaches and reviewers, in that order."""
    accounts = []  # (username, organisation, role, team)
    accounts += [
        (f"therapist{j + 1:03d}", providers[(j // 10) % PROVIDERS], Role.THERAPIST, teams[j // 10]) for j in range(THERAPISTS)
    ]
    accounts += [(f"lead{t + 1:02d}", providers[t % PROVIDERS], Role.CLINICAL_LEAD, teams[t]) for t in range(TEAMS)]
    accounts += [(f"dpo{p + 1}", providers[p], Role.DPO, None) for p in range(PROVIDERS)]
    accounts += [(f"workcoach{p + 1}", agencies[p], Role.WORK_COACH, None) for p in range(PROVIDERS)]
    accounts += [(f"reviewer-{b.name.lower()}", b, Role.REVIEWER, None) for b in bodies]
    # bulk_create skips User.save, whose checks the accounts above satisfy by construction.
    users = User.objects.bulk_create([User(username=name, password=password) for name, *_ in accounts])
    StaffProfile.objects.bulk_create(
        [
            StaffProfile(user=u, organisation=org, role=role, team=team)
            for u, (_, org, role, team) in zip(users, accounts, strict=True)
        ]
    )
    Membership = User.groups.through
    Membership.objects.bulk_create(
        [Membership(user_id=u.pk, group_id=team.group_id) for u, (_, _, role, team) in zip(users, accounts, strict=True)
         if role == Role.CLINICAL_LEAD]
    )  # fmt: skip
    return users


# ---- referrals and what follows them ------------------------------------------------------------------------

REFERRAL_FIELDS = ["id", "client", "provider", "site", "team", "referred_on", "source_of_referral", "how_heard", "pathway",
                   "status", "recorded_by", "created_at", "updated_at", "record_key", "client_known_at_intake",
                   "intake_nhs_number"]  # fmt: skip
CLIENT_FIELDS = ["id", "provider", "local_reference", "nhs_number", "year_of_birth", "created_at"]
PERM_FIELDS = ["permission", "user", "content_object"]
GROUP_PERM_FIELDS = ["permission", "group", "content_object"]
CONSENT_FIELDS = ["referral", "template", "given_at", "method", "scopes", "attendance_is_optional", "no_effect_on_benefits",
                  "service_separate_from_jobcentre", "nothing_shared_with_jobcentre", "free_to_withdraw", "recorded_by",
                  "recorded_at", "content_sha256", "content_signature"]  # fmt: skip
CHECK_FIELDS = ["referral", "checked_at", "stage", "told_attendance_required", "sanction_mentioned", "feels_free_to_stop",
                "goals_set_by_client", "employment_goal_raised_by", "recorded_by", "recorded_at"]  # fmt: skip
WITHDRAWAL_FIELDS = ["referral", "withdrawn_at", "reason", "recorded_by", "recorded_at"]
DECLINE_FIELDS = ["referral", "declined_on", "recorded_by", "recorded_at"]
DISCHARGE_FIELDS = ["referral", "discharged_on", "reason", "recorded_by", "recorded_at"]

# Event kinds: (action, method, path after /api/v1/referrals/{id}/, status, outcome, alert reasons).
EVENT_KINDS = [
    (Action.CREATE, "POST", None, 201, Outcome.ALLOWED, ""),
    (Action.RECORD, "POST", "consents/", 201, Outcome.ALLOWED, ""),
    (Action.RECORD, "POST", "voluntariness-checks/", 201, Outcome.ALLOWED, ""),
    (Action.RECORD, "POST", "withdrawals/", 201, Outcome.ALLOWED, ""),
    (Action.RECORD, "POST", "decline/", 201, Outcome.ALLOWED, ""),
    (Action.RECORD, "POST", "discharge/", 201, Outcome.ALLOWED, ""),
    (Action.READ, "GET", "", 200, Outcome.ALLOWED, ""),
    (Action.LIST, "GET", None, 200, Outcome.ALLOWED, ""),
    (Action.READ, "GET", "", 404, Outcome.DENIED, "denied,benefits_agency"),
]
CREATE, CONSENT, CHECK, WITHDRAW, DECLINE, DISCHARGE, READ, LIST, DENIED = range(len(EVENT_KINDS))
# An event's own head signature is left empty: the world's chain heads are signed once each (_signed_head).
EVENT_FIELDS = [name for name in HASHED_FIELDS] + ["hash", "head_signature", "head_key_id"]
# The tables each chunk of referrals fills, in the order they are inserted.
LOADED_TABLES = (
    (Client, CLIENT_FIELDS, "client"), (Referral, REFERRAL_FIELDS, "referral"),
    (ReferralUserObjectPermission, PERM_FIELDS, "uperm"), (ReferralGroupObjectPermission, GROUP_PERM_FIELDS, "gperm"),
    (ConsentRecord, CONSENT_FIELDS, "consent"), (VoluntarinessCheck, CHECK_FIELDS, "check"),
    (Withdrawal, WITHDRAWAL_FIELDS, "withdrawal"), (Decline, DECLINE_FIELDS, "decline"),
    (Discharge, DISCHARGE_FIELDS, "discharge"),
)  # fmt: skip

PATHWAYS = (["self_referral", "signposted_by_work_coach", "mandated_assessment", "benefit_condition"], [55, 30, 8, 7])
HEARD_SELF = ["leaflet_or_poster", "gp", "friend_or_family", "found_themselves", "other"]
GOAL_RAISED = (["nobody", "client", "therapist", "benefits_agency"], [60, 25, 10, 5])
WITHDRAW_REASONS = (["no_longer_wanted", "felt_pressured", "moved_or_unreachable", "other"], [50, 20, 20, 10])
DISCHARGE_REASONS = (["completed", "client_ended", "not_suitable", "referred_on", "no_contact"], [60, 15, 5, 10, 10])
SCOPES = ["contact_by_phone", "contact_by_sms", "contact_by_letter", "share_with_gp"]


def _at(day: date, hour: int, rng: random.Random) -> datetime:
    return datetime(
        day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), rng.randrange(1_000_000), tzinfo=UTC
    )


def build(referrals: int, *, seed: int = 2026) -> float:
    """Build the world of `referrals` referrals in the current (empty, migrated) database; returns seconds taken."""
    started = time.perf_counter()
    rng = random.Random(seed)
    load = Loader()
    _prepare_connection()
    with transaction.atomic():
        world = _people_and_places()
    log(f"people and places in {time.perf_counter() - started:.1f}s")
    world.update(_lookups(world))

    # Each provider's events as compact tuples (time in µs, referral number, kind, actor user id), sorted and
    # hashed once every referral is written.
    events: list[list[tuple]] = [[] for _ in world["providers"]]
    referral_ids: list[uuid.UUID] = []
    client_ids: list[uuid.UUID] = []
    for chunk_start in range(0, referrals, CHUNK):
        rows = {key: [] for _, _, key in LOADED_TABLES}
        for number in range(chunk_start, min(referrals, chunk_start + CHUNK)):
            referral_id, client_id, p, own = _referral(number, world, rows, load, rng)
            referral_ids.append(referral_id)
            client_ids.append(client_id)
            events[p].extend(own)
        _insert_rows(load, rows)
        log(f"{min(referrals, chunk_start + CHUNK):,} referrals in {time.perf_counter() - started:.1f}s")

    total_events = _write_chains(load, world, events, referral_ids, client_ids, rng, started)
    _restore_connection()
    # The voluntariness flags the report reads, from the records just loaded, as the migration's backfill does.
    rebuild_voluntariness_flags()
    log(f"voluntariness flags in {time.perf_counter() - started:.1f}s")
    # Each user's caseload the firewall lists from, from the grants just loaded, as the migration's backfill does.
    rebuild_caseload()
    log(f"caseloads in {time.perf_counter() - started:.1f}s")
    keep_report_cells()
    log(f"report cells in {time.perf_counter() - started:.1f}s")
    seconds = time.perf_counter() - started
    _mark(referrals, seconds)
    log(f"{referrals:,} referrals, {total_events:,} access events in {seconds:.1f}s")
    return seconds


def keep_report_cells() -> None:
    """Every pilot's kept lattice cells counted from the records, where they are missing or were counted for other
    dates or sites (as a deployment's first report of each pilot would)."""
    for pilot in Pilot.objects.all():
        count_if_changed(pilot, list(pilot.sites.values_list("pk", flat=True)))


def _lookups(world: dict) -> dict:
    """What every referral needs looked up once: permissions, indexes, each actor's logged identity, the span of days."""
    actor_of: dict[int, tuple] = {}
    for user in [*world["therapists"], *world["leads"], *world["dpos"], *world["work_coaches"]]:
        profile = StaffProfile.objects.select_related("organisation").get(user_id=user.pk)
        actor_of[user.pk] = (user.pk, user.username, profile.organisation_id, profile.organisation.kind)
    return {
        "view": Permission.objects.get(codename="view_referral", content_type__app_label="consent").pk,
        "change": Permission.objects.get(codename="change_referral", content_type__app_label="consent").pk,
        "template_id": world["template"].pk,
        "provider_index": {org.pk: p for p, org in enumerate(world["providers"])},
        "days": (LAST_DAY - FIRST_DAY).days + 1,
        "actor_of": actor_of,
        "leads_of_team": {team.pk: lead.pk for team, lead in zip(world["teams"], world["leads"], strict=True)},
        "end_us": int(WORLD_END.timestamp() * 1_000_000),
    }


def _referral(number: int, world: dict, rows: dict, load: Loader, rng: random.Random) -> tuple:
    """One referral's rows appended to `rows`; returns its id, its client's id, its provider number and its events."""
    therapist_number = rng.randrange(THERAPISTS)
    therapist = world["therapists"][therapist_number]
    team = world["teams"][therapist_number // 10]
    p = world["provider_index"][team.organisation_id]
    provider = world["providers"][p]
    site = rng.choice(world["sites_of"][p])
    referred_on = FIRST_DAY + timedelta(days=rng.randrange(world["days"]))
    created = _at(referred_on, rng.randint(9, 16), rng)
    referral_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    client_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    pathway = rng.choices(*PATHWAYS)[0]
    source, heard = _source_and_heard(pathway, site, rng)
    rows["client"].append((
        load.uuid(client_id), provider.pk, f"{provider.ods_code}-{number + 1:07d}",
        _nhs_number(rng) if rng.random() < 0.7 else "", rng.randint(1960, 2006), load.time(created),
    ))  # fmt: skip
    for permission in (world["view"], world["change"]):
        rows["uperm"].append((permission, therapist.pk, load.uuid(referral_id)))
        rows["gperm"].append((permission, team.group_id, load.uuid(referral_id)))
    rid = load.uuid(referral_id)
    kinds, status, updated = _episode(rid, referred_on, created, therapist, world["template_id"], rows, load, rng)
    rows["referral"].append((rid, load.uuid(client_id), provider.pk, site.pk, team.pk, load.date(referred_on), source,
                             heard, pathway, status, therapist.pk, load.time(created),
                             load.time(updated), referral_id.int % 256, False, ""))  # fmt: skip
    own = _access_events(number, created, kinds, therapist, team, p, world, rng)
    return referral_id, client_id, p, own


def _source_and_heard(pathway: str, site: Site, rng: random.Random) -> tuple[str, str]:
    """The referral's source code and how the client heard of the service, as its pathway makes likely."""
    if pathway == "self_referral":
        source = rng.choices(["B1", "B2", "A1"], [80, 10, 10])[0]
        heard = rng.choice(HEARD_SELF)
    else:
        source = rng.choices(["M5", "B1"], [60, 40])[0] if site.venue_kind == "jobcentre" else "B1"
        heard = "work_coach_suggested"
    return source, heard


def _episode(rid, referred_on: date, created: datetime, therapist, template_id: int, rows: dict, load: Loader,
             rng: random.Random) -> tuple[list, str, datetime]:  # fmt: skip
    """What followed a referral: a decline, or (unless it is recent and still waiting) consent and what came after.

    Returns the (time, event kind) of each recorded step, the referral's status and its last update.
    """
    kinds = [(created, CREATE)]
    age = (LAST_DAY - referred_on).days
    status, updated = "awaiting_consent", created
    if rng.random() < 0.08:
        declined_on = min(LAST_DAY, referred_on + timedelta(days=rng.randint(0, 3)))
        at = _at(declined_on, 17, rng)
        rows["decline"].append((rid, load.date(declined_on), therapist.pk, load.time(at)))
        kinds.append((at, DECLINE))
        status, updated = "declined", at
    elif not (age < 21 and rng.random() < 0.5):
        status, updated = _consented(rid, referred_on, age, therapist, template_id, kinds, rows, load, rng)
    return kinds, status, updated


def _sealed_digest(rid, template_id: int, given: datetime, method: str, scopes: list, recorded_by: int) -> tuple[str, str]:
    """The consent record's content digest and its seal, as ConsentRecord.save writes them (receipts check both)."""
    record = ConsentRecord(referral_id=rid, template_id=template_id, given_at=given, method=method, scopes=scopes,
                           recorded_by_id=recorded_by, **dict.fromkeys(ACKNOWLEDGEMENTS, True))  # fmt: skip
    digest = record.content_digest()
    return digest, seal(digest)


def _consented(rid, referred_on: date, age: int, therapist, template_id: int, kinds: list, rows: dict, load: Loader,
               rng: random.Random) -> tuple[str, datetime]:  # fmt: skip
    """Consent, most often an intake check, then perhaps a withdrawal or a discharge; returns status and last update."""
    consent_day = min(LAST_DAY, referred_on + timedelta(days=rng.choice([0, 0, 1, 2, 3, 5, 8])))
    given = _at(consent_day, 10, rng)
    scopes = ["treatment", "data_set_submission", *rng.sample(SCOPES, 2)]
    method = rng.choice(["verbal", "written", "digital"])
    digest, seal = _sealed_digest(rid, template_id, given, method, scopes, therapist.pk)
    rows["consent"].append((rid, template_id, load.time(given), method, json.dumps(scopes),
                            True, True, True, True, True, therapist.pk, load.time(given), digest, seal))  # fmt: skip
    kinds.append((given, CONSENT))
    status, updated = "active", given
    if rng.random() < 0.9:
        roll = rng.random()
        checked = given + timedelta(minutes=10)
        rows["check"].append((rid, load.time(checked), "intake", roll < 0.04, 0.04 <= roll < 0.07,
                              not (0.07 <= roll < 0.13), roll >= 0.1, rng.choices(*GOAL_RAISED)[0],
                              therapist.pk, load.time(checked)))  # fmt: skip
        kinds.append((checked, CHECK))
        updated = checked
    if age > 30 and rng.random() < 0.12:
        withdrawn = _at(min(LAST_DAY, consent_day + timedelta(days=rng.randint(7, 30))), 15, rng)
        rows["withdrawal"].append((rid, load.time(withdrawn), rng.choices(*WITHDRAW_REASONS)[0], therapist.pk,
                                   load.time(withdrawn)))  # fmt: skip
        kinds.append((withdrawn, WITHDRAW))
        status, updated = "withdrawn", withdrawn
    elif age > 100 and rng.random() < 0.7:
        ended = min(LAST_DAY, consent_day + timedelta(days=rng.randint(60, 95)))
        checked = _at(ended, 11, rng)
        rows["check"].append((rid, load.time(checked), "discharge", False, False, True, True,
                              rng.choice(["nobody", "client"]), therapist.pk, load.time(checked)))  # fmt: skip
        rows["discharge"].append((rid, load.date(ended), rng.choices(*DISCHARGE_REASONS)[0], therapist.pk,
                                  load.time(checked)))  # fmt: skip
        kinds += [(checked, CHECK), (checked + timedelta(seconds=5), DISCHARGE)]
        status, updated = "discharged", checked + timedelta(seconds=5)
    return status, updated


def _access_events(number: int, created: datetime, kinds: list, therapist, team, p: int, world: dict,
                   rng: random.Random) -> list[tuple]:  # fmt: skip
    """One referral's access events: its recorded steps, then reads and list entries to make about ten in all."""
    # Reads and list entries make up the rest of about ten events, spread over the episode.
    created_us = int(created.timestamp() * 1_000_000)
    span_us = max(1, min(world["end_us"] - created_us, 120 * 86_400_000_000))
    own = [(int(at.timestamp() * 1_000_000), number, kind, therapist.pk) for at, kind in kinds]
    for _ in range(EVENTS_PER_REFERRAL - len(own)):
        roll = rng.random()
        kind, actor = (READ, therapist.pk) if roll < 0.3 else (LIST, therapist.pk)
        if roll > 0.97:
            kind, actor = READ, world["leads_of_team"][team.pk]
        own.append((created_us + rng.randrange(span_us), number, kind, actor))
    # Now and then a work coach tries to read a referral and is refused (the firewall's denials).
    if rng.random() < 0.002:
        coach = world["work_coaches"][p].pk
        own.append((created_us + rng.randrange(span_us), number, DENIED, coach))
    return own


def _insert_rows(load: Loader, rows: dict) -> None:
    """One chunk's rows, table by table in LOADED_TABLES' order (clients before the referrals that point at them)."""
    for model, fields, key in LOADED_TABLES:
        with transaction.atomic():
            load.insert(model, fields, rows[key])


def _write_chains(load: Loader, world: dict, events: list, referral_ids, client_ids, rng, started: float) -> int:
    """Each provider's events sorted, hashed onto its chain and signed; returns how many events were written."""
    total_events = 0
    for p, provider in enumerate(world["providers"]):
        chain = events[p]
        chain.sort()
        events[p] = []
        # Setting up the people already put events on the chain (authorisation changes are logged): go on from them.
        head = ChainHead.objects.filter(organisation=provider).values_list("seq", "head_hash").first() or (0, GENESIS_HASH)
        seq, prev_hash = _write_chain(load, provider, chain, referral_ids, client_ids, world["actor_of"], rng, head)
        total_events += seq
        _signed_head(provider, seq, prev_hash)
        log(f"chain of {provider.name}: {seq:,} events, {time.perf_counter() - started:.1f}s")
    return total_events


def _signed_head(provider, seq: int, head_hash: str) -> None:
    """The chain's head, signed with the log key as the log's own writes sign it (consent.access.heads)."""
    newest = AccessEvent.objects.filter(chain=provider, seq=seq).values_list("occurred_at", flat=True).first()
    signature, key_id = heads.sign(provider.pk, seq, head_hash, newest)
    ChainHead.objects.update_or_create(
        organisation=provider,
        defaults={"seq": seq, "head_hash": head_hash, "signed_at": newest, "signature": signature, "key_id": key_id},
    )


def _write_chain(load, provider, chain, referral_ids, client_ids, actor_of, rng, head) -> tuple[int, str]:
    """Hash one provider's events in order with the log's own function and write them in batches after `head`."""
    seq, prev_hash = head
    batch = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for at_us, number, kind, actor in chain:
        action, method, suffix, status, outcome, alerts = EVENT_KINDS[kind]
        referral_id = referral_ids[number]
        path = "/api/v1/referrals/" if suffix is None else f"/api/v1/referrals/{referral_id}/{suffix}"
        actor_id, actor_name, actor_org, actor_kind = actor_of[actor]
        seq += 1
        values = {
            "chain_id": provider.pk,
            "seq": seq,
            "occurred_at": epoch + timedelta(microseconds=at_us),
            "actor_id": actor_id,
            "actor_name": actor_name,
            "actor_organisation_id": actor_org,
            "actor_organisation_kind": actor_kind,
            "action": action.value,
            "object_type": "referral",
            "object_id": str(referral_id),
            "client_pseudonym": client_ids[number],
            "referral_id": referral_id,
            "outcome": outcome.value,
            "purpose": "",
            "request_id": f"{rng.getrandbits(128):032x}",
            "client_request_id": "",
            "method": method,
            "path": path,
            "status": status,
            "alert_reasons": alerts,
            "prev_hash": prev_hash,
        }
        prev_hash = event_hash(values)
        values["hash"] = prev_hash
        values["occurred_at"] = load.time(values["occurred_at"])
        values["client_pseudonym"] = load.uuid(values["client_pseudonym"])
        values["referral_id"] = load.uuid(referral_id)
        values["head_signature"] = values["head_key_id"] = ""
        batch.append(tuple(values[name] for name in EVENT_FIELDS))
        if len(batch) >= CHUNK:
            with transaction.atomic():
                load.insert(AccessEvent, EVENT_FIELDS, batch)
            batch = []
    with transaction.atomic():
        load.insert(AccessEvent, EVENT_FIELDS, batch)
    return seq, prev_hash
