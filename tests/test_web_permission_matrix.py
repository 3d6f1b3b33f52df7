"""The permission matrix of the web pages: every page, every role, our object, another provider's, a missing id.

Like the API's (tests/test_permission_matrix.py; the scene is the endpoint catalogue's, tests/endpoints.py): each row names a page (a method and a
path) and the status each role must get on "ours" (Kent), "theirs" (Medway) and "missing" (an id that does not
exist). A page of web/urls.py with no row fails the suite. Every body is searched for the identifiers (referral
id, client pseudonym, local reference, NHS number) of the scene's referrals: a refused request's page names
none of them, and an allowed one names only what the row allows.
"""

from dataclasses import dataclass, field

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from tests import endpoints as api_matrix
from tests.conftest import ROLES
from tests.endpoints import DPO_SEES, RECORDERS, REPORT_FREEZERS, SIDES, SIGNED_IN, TEAM

OK, FOUND, BAD, FORBIDDEN, NOT_FOUND, NOT_ALLOWED = 200, 302, 400, 403, 404, 405
DPOS = ("dpo", "other_provider_dpo")
READERS = ("reviewer", "lead", "other_team_lead", "dpo", "other_provider_dpo")


def everyone(status, *, anonymous=FOUND, **overrides) -> dict:
    """The catalogue's rule with pages' default: the anonymous are sent to sign in."""
    return api_matrix.everyone(status, anonymous=anonymous, **overrides)


def only(roles, ok, *, others=FORBIDDEN, anonymous=FOUND, **overrides) -> dict:
    return everyone(others, anonymous=anonymous, **{**{role: ok for role in roles}, **overrides})


def per_object(ok, *, ours=(), theirs=(), may_try=SIGNED_IN, refused=NOT_FOUND) -> dict:
    """`ok` on each side for its roles; those who may try get `refused` (a logged not-found), others a 403."""
    expect = {}
    for role in ROLES:
        if role == "anonymous":
            expect[role] = dict.fromkeys(SIDES, FOUND)
            continue
        other = refused if role in may_try else FORBIDDEN
        expect[role] = {"ours": ok if role in ours else other, "theirs": ok if role in theirs else other,
                        "missing": NOT_FOUND if role in may_try else FORBIDDEN}  # fmt: skip
    return expect


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: dict
    body: object = None
    state: str = ""
    sides: tuple = SIDES
    sees: dict = field(default_factory=dict)
    # The referral the page is about is named in the body (break-glass), not in the path.
    target_in_body: bool = False

    @property
    def is_object_row(self) -> bool:
        return isinstance(next(iter(self.expect.values())), dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def label(self, side):
        return f"{side}_{self.state}" if self.state else side


TEAM_MAY_TRY = RECORDERS + ("work_coach",)
DPO_SIDE = {"ours": ("dpo",), "theirs": ("other_provider_dpo",)}
REPORT_READERS = {"ours": READERS, "theirs": ("other_provider_dpo",)}
# The firewall answers "not found" to anyone who asks for a referral: those without a part get nothing more.
ANYONE_ASKING = SIGNED_IN


def _new_referral(scene, role, side):
    return {"local_reference": f"NEW-{role}", "site": scene.world.site.pk, "referred_on": "2026-09-20",
            "how_heard": "leaflet_or_poster", "pathway": "self_referral", "source_of_referral": "B1"}  # fmt: skip


def _consent(scene, role, side):
    return {"template": scene.world.template.pk, "method": "verbal", "given_at": "2026-09-20T10:00",
            "acknowledgements": list(api_matrix.ACKNOWLEDGED), "scopes": ["treatment"]}  # fmt: skip


CHECK = {"checked_at": "2026-09-20T11:00", "stage": "during_therapy", "told_attendance_required": "no",
         "sanction_mentioned": "no", "feels_free_to_stop": "yes", "goals_set_by_client": "yes",
         "employment_goal_raised_by": "nobody"}  # fmt: skip


def _group(scene, role, side):
    w = scene.world
    from consent.access.models import AccessEvent

    alert = AccessEvent.objects.get(pk=scene.alerts["ours"])
    return {"group": f"{w.work_coach.pk}/{timezone.localtime(alert.occurred_at).date().isoformat()}", "up_to": alert.seq,
            "disposition": "no_concern", "note": "Reviewed."}  # fmt: skip


def _break_glass(scene, role, side):
    referral = scene.referrals.get(side)
    return {"referral": str(referral.pk) if referral else "6d1f2a40-0000-4000-8000-000000000000", "reason": "Safeguarding"}


MATRIX = [
    # ---- signing in and out, the start, the work coach's page
    Row("GET", "/", everyone(FOUND, admin=OK)),
    Row("GET", "/sign-in/", everyone(FOUND, anonymous=OK)),
    Row("POST", "/sign-in/", everyone(FOUND, anonymous=BAD), body={"username": "nobody", "password": "wrong"}),
    Row("POST", "/sign-out/", everyone(OK, anonymous=OK)),
    Row("GET", "/no-client-data/", everyone(OK)),
    # ---- the therapist and the clinical lead
    Row("GET", "/clients/", only(RECORDERS, OK), sees={"therapist": "kent", "lead": "kent", "other_provider_therapist": "medway"}),
    Row("GET", "/clients/?q=KTT", only(RECORDERS, OK), sees={"therapist": "kent", "lead": "kent"}),
    Row("GET", "/clients/new/", only(RECORDERS, OK)),
    Row("POST", "/clients/new/", only(RECORDERS, FOUND, other_provider_therapist=BAD), body=_new_referral),
    Row("GET", "/clients/{referral}/", per_object(OK, **TEAM)),
    Row("GET", "/clients/{referral}/consent/", per_object(OK, **TEAM)),
    Row("POST", "/clients/{referral}/consent/", per_object(FOUND, **TEAM), body=_consent),
    Row("GET", "/clients/{referral}/voluntariness-check/", per_object(OK, **TEAM)),
    Row("POST", "/clients/{referral}/voluntariness-check/", per_object(FOUND, **TEAM), body=CHECK),
    Row("GET", "/clients/{referral}/withdraw/", per_object(OK, **TEAM)),
    Row("POST", "/clients/{referral}/withdraw/", per_object(FOUND, **TEAM),
        body={"what": "therapy", "withdrawn_at": "2026-10-01T09:00", "reason": "no_longer_wanted"}),
    Row("GET", "/clients/{referral}/decline/", per_object(OK, **TEAM), state="fresh"),
    Row("POST", "/clients/{referral}/decline/", per_object(FOUND, **TEAM), body={"declined_on": "2026-09-20"}, state="fresh"),
    Row("GET", "/clients/{referral}/discharge/", per_object(OK, **TEAM)),
    Row("POST", "/clients/{referral}/discharge/", per_object(FOUND, **TEAM), body={"discharged_on": "2026-10-02", "reason": "completed"}),
    Row("GET", "/clients/{referral}/receipt/", per_object(OK, **TEAM)),
    Row("GET", "/clients/{referral}/assignments/", per_object(OK, ours=("lead",))),
    Row("POST", "/clients/{referral}/assignments/", per_object(FOUND, ours=("lead",)), body={"action": "assign", "therapist": "unassigned"}),
    Row("GET", "/break-glass/", only(("lead", "other_team_lead"), OK)),
    Row("POST", "/break-glass/", per_object(OK, ours=("lead", "other_team_lead"), may_try=("lead", "other_team_lead")),
        body=_break_glass, target_in_body=True),
    # ---- the data-protection officer
    Row("GET", "/dpo/alerts/", only(DPOS, OK), sees=DPO_SEES),
    Row("POST", "/dpo/alerts/dispose/", only(DPOS, FOUND), body=_group, sees=DPO_SEES),
    Row("GET", "/dpo/log/", only(DPOS, OK), sees=DPO_SEES),
    Row("GET", "/dpo/chain/", only(DPOS, OK)),
    Row("POST", "/dpo/chain/", only(DPOS, OK)),
    Row("GET", "/dpo/subject-access/", only(DPOS, OK)),
    Row("GET", "/dpo/subject-access/{referral}/", per_object(OK, may_try=DPOS, **DPO_SIDE)),
    # ---- reports: suppressed figures only
    Row("GET", "/reports/", only(READERS, OK)),
    Row("GET", "/reports/{pilot}/?period=2026-Q3", per_object(OK, may_try=READERS, **REPORT_READERS)),
    Row("GET", "/reports/{pilot}/csv/?period=2026-Q3", per_object(OK, may_try=READERS, **REPORT_READERS)),
    Row("POST", "/reports/{pilot}/freeze/", per_object(FOUND, may_try=READERS, **REPORT_FREEZERS), body={"period": "2026-Q3"}),
    Row("GET", "/reports/snapshots/{snapshot}/", per_object(OK, may_try=READERS, ours=READERS), sides=("ours", "missing")),
]  # fmt: skip


def web_patterns():
    """Every pattern of web/urls.py, found by walking the project's resolver."""
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and getattr(entry.urlconf_name, "__name__", "") == "web.urls":
            yield from (p for p in entry.url_patterns if isinstance(p, URLPattern))


def test_every_page_has_a_row_in_the_matrix():
    covered = {resolve(row.path.split("?")[0].format(referral="x", pilot=1, snapshot=1)).func for row in MATRIX}
    patterns = list(web_patterns())
    missing = [str(p.pattern) for p in patterns if p.callback not in covered]
    assert len(patterns) > 20
    assert not missing, f"Pages with no row in the web permission matrix: {missing}"


def _path(scene, row, side):
    if side == "missing":
        return row.path.format(referral="6d1f2a40-0000-4000-8000-000000000000", pilot=api_matrix.MISSING_NUMBER,
                               snapshot=api_matrix.MISSING_NUMBER)  # fmt: skip
    w = scene.world
    referral = scene.referrals[row.label(side)]
    pilot = w.pilot if side == "ours" else scene.other_pilot
    snapshot = scene.snapshot() if "{snapshot}" in row.path else None
    return row.path.format(referral=referral.pk, pilot=pilot.pk, snapshot=snapshot)


def call(scene, row, role, side):
    client = Client()
    user = scene.world.user(role)
    if user is not None:
        client.force_login(user)
    body = row.body(scene, role, side or "ours") if callable(row.body) else row.body
    path = _path(scene, row, side or "ours")
    with transaction.atomic():
        response = client.generic(row.method, path) if row.method == "GET" else client.post(path, body or {})
        content = b"".join(response.streaming_content) if response.streaming else response.content
        transaction.set_rollback(True)
    return path, response.status_code, content.decode("utf-8", "replace")


def _allowed(row, scene, role, side, status):
    provider = row.sees.get(role)
    allowed = {label for label in scene.referrals if provider and scene.provider_of(label) == provider}
    if side not in (None, "missing") and status < 300 and ("{referral}" in row.path or row.target_in_body):
        allowed.add(row.label(side))
    return allowed


@pytest.mark.parametrize("row", MATRIX, ids=lambda row: row.id)
def test_each_role_gets_the_page_the_matrix_gives(scene, row):
    identifiers = scene.identifiers()
    problems = []
    for role in ROLES:
        for side in SIDES if row.is_object_row else (None,):
            if row.is_object_row and side not in row.sides:
                continue
            path, status, text = call(scene, row, role, side)
            expected = row.expect[role][side] if side else row.expect[role]
            if status != expected:
                problems.append(f"{role:>24} {side or '':>7}: {status}, expected {expected}  {row.method} {path}")
            allowed = _allowed(row, scene, role, side, status)
            leaked = [f"{label}:{value}" for label, values in identifiers.items() if label not in allowed
                      for value in values if value in text]  # fmt: skip
            if leaked:
                problems.append(f"{role:>24} {side or '':>7}: body names {leaked}  {row.method} {path}")
    assert not problems, f"{row.id}\n" + "\n".join(problems)


@pytest.fixture
def scene(world):
    return api_matrix.build_scene(world)
