"""The endpoint catalogue: every URL of the API, who may use it, and the scene it is tried on.

Each row names one endpoint (a method and a path) and the status every role must get on "ours" (a Kent
referral recorded by `therapist`, or the Kent-side object), "theirs" (the same thing at another provider,
Medway) and "missing" (an id that does not exist). The permission matrices (tests/test_permission_matrix.py,
tests/test_web_permission_matrix.py), the benefits-agency sweep and the OPTIONS/HEAD tests all read it, so an
endpoint is described once; the API matrix fails on a URL pattern without a row, or a row that no longer resolves.
"""

import uuid
from dataclasses import dataclass, field

import nhs_number
import pytest
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from rest_framework.views import APIView

from colocation.models import OrganisationKind
from consent import services
from consent.access import firewall
from consent.access.log import AccessContext
from consent.access.models import AccessEvent
from consent.models import Client, ConsentRecord, VoluntarinessCheck, Withdrawal
from tests.conftest import PASSWORD, ROLES, api_client, give_consent, intake_check, make_referral
from tests.factories import ACKNOWLEDGED, OrganisationFactory, PilotFactory, at

OK, CREATED, NO_CONTENT, BAD, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND = 200, 201, 204, 400, 401, 403, 404
# Where docs/architecture.md ("Who uses it") names who may use an endpoint but not which refusal the others get, either is accepted;
# for referrals themselves the answer is always exactly 404 (the same as for an id that does not exist).
REFUSED = frozenset({FORBIDDEN, NOT_FOUND})
WRITTEN = frozenset({OK, CREATED})
REMOVED = frozenset({OK, NO_CONTENT})

SIGNED_IN = tuple(role for role in ROLES if role != "anonymous")
RECORDERS = ("therapist", "unassigned_therapist", "lead", "other_team_lead", "other_provider_therapist")
SIDES = ("ours", "theirs", "missing")


# ---- the scene ------------------------------------------------------------------------------------------------


def valid_nhs_number(n: int) -> str:
    """The n-th valid NHS number in the 999 range (reserved for tests), so each client gets its own."""
    found = 0
    for body in range(999_000_000, 999_999_999):
        check = nhs_number.calculate_checksum(str(body))
        if check is not None and check < 10:
            if found == n:
                return f"{body}{check}"
            found += 1
    raise AssertionError("no NHS number left")


@dataclass
class Scene:
    """The world, plus referrals in each state on both sides, their records, alerts and a second pilot."""

    world: object
    referrals: dict = field(default_factory=dict)  # label -> Referral, labels "ours", "theirs_fresh", ...
    records: dict = field(default_factory=dict)  # (label, kind) -> record id
    alerts: dict = field(default_factory=dict)  # side -> AccessEvent id of an alert on that side's chain
    other_pilot: object = None
    _snapshot: object = "unset"

    def provider_of(self, label: str) -> str:
        return "kent" if label.startswith("ours") else "medway"

    def identifiers(self) -> dict[str, tuple[str, ...]]:
        """What would identify each scene referral or its client in a response body."""
        result = {}
        for label, referral in self.referrals.items():
            client = Client.objects.get(pk=referral.client_id)
            result[label] = tuple(v for v in (str(referral.pk), str(client.pk), client.local_reference, client.nhs_number) if v)
        return result

    def snapshot(self):
        """A frozen compliance report of the world's pilot, made through the API by the DPO (None if it cannot be)."""
        if self._snapshot == "unset":
            response = api_client(self.world.dpo).post(
                f"/api/v1/pilots/{self.world.pilot.pk}/compliance-reports/", {"period": "2026-Q3"}, format="json"
            )
            body = response.json() if response.status_code in WRITTEN else {}
            self._snapshot = body.get("id") if isinstance(body, dict) else None
        return self._snapshot


def _alert_on(chain, user, referral):
    """A denied attempt, which the log always raises as an alert, on the referral's provider chain."""
    with pytest.raises(firewall.ReferralNotFound):
        firewall.open_referral(AccessContext.for_command(user, "test"), referral.pk, purpose=firewall.Purpose.VIEW)
    return AccessEvent.objects.filter(chain=chain, outcome="denied").exclude(alert_reasons="").latest("seq").pk


def build_scene(world) -> Scene:
    """Referrals in each state on both sides with their records, an alert on each chain, a Medway-only pilot."""
    w = world
    s = Scene(world=w)
    s.referrals["ours"], s.referrals["theirs"] = w.referral, w.medway_referral
    n = 0
    for side, user, site, prefix in (
        ("ours", w.therapist, w.site, "KTT"),
        ("theirs", w.other_provider_therapist, w.medway_site, "MWS"),
    ):
        for state in ("fresh", "withdrawn"):
            n += 1
            s.referrals[f"{side}_{state}"] = make_referral(
                user, site, local_reference=f"{prefix}-{state.upper()}-{n:04d}", nhs_number=valid_nhs_number(n)
            )
        # "ours"/"theirs" are consented, with an intake check; "_withdrawn" has each kind of record.
        for label in (side, f"{side}_withdrawn"):
            referral = s.referrals[label]
            s.records[(label, "consent")] = give_consent(user, referral, w.template).pk
            s.records[(label, "check")] = intake_check(user, referral).pk
        withdrawn = s.referrals[f"{side}_withdrawn"]
        s.records[(f"{side}_withdrawn", "withdrawal")] = services.record_withdrawal(
            context=AccessContext.for_command(user, "test"), referral_id=withdrawn.pk,
            withdrawn_at=at(withdrawn.referred_on, 15), reason="no_longer_wanted",
        ).pk  # fmt: skip
    s.alerts["ours"] = _alert_on(w.kent, w.work_coach, w.referral)
    s.alerts["theirs"] = _alert_on(w.medway, w.work_coach, w.medway_referral)
    # A pilot of Medway's site only, overseen by another body: nobody at Kent or BACP has a part in it.
    ukcp = OrganisationFactory(name="UKCP", kind=OrganisationKind.PROFESSIONAL_BODY)
    s.other_pilot = PilotFactory(name="Medway pilot")
    s.other_pilot.sites.set([w.medway_site])
    s.other_pilot.overseen_by.set([ukcp])
    assert ConsentRecord.objects.count() == 4 and VoluntarinessCheck.objects.count() == 4 and Withdrawal.objects.count() == 2
    return s


# ---- rows -----------------------------------------------------------------------------------------------------


def everyone(status, *, anonymous=UNAUTHENTICATED, **overrides) -> dict:
    """The same answer for every signed-in role, except those named."""
    return {role: overrides.get(role, anonymous if role == "anonymous" else status) for role in ROLES}


def per_object(ok, *, ours=(), theirs=(), refused=NOT_FOUND, anonymous=UNAUTHENTICATED) -> dict:
    """`ok` for the roles allowed on each side, `refused` for the others; a missing id is a 404 to anyone allowed."""
    expect = {}
    for role in ROLES:
        if role == "anonymous":
            expect[role] = dict.fromkeys(SIDES, anonymous)
            continue
        expect[role] = {
            "ours": ok if role in ours else refused,
            "theirs": ok if role in theirs else refused,
            "missing": NOT_FOUND if (role in ours or role in theirs or refused == NOT_FOUND) else refused,
        }
    return expect


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # with placeholders: {referral} {client} {consent} {withdrawal} {check} {site} {pilot} ...
    expect: dict  # role -> status (or set of statuses); for object rows role -> {side: status}
    body: object = None  # a dict, or a callable (scene, role, side) -> dict
    state: str = ""  # which referral of a side: "" (consented), "fresh" or "withdrawn"
    sides: tuple = SIDES
    # Which provider's referrals a role may find in a list's body (object rows: only the target referral).
    sees: dict = field(default_factory=dict)
    why: str = ""

    @property
    def is_object_row(self) -> bool:
        return isinstance(next(iter(self.expect.values())), dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def label(self, side: str) -> str:
        return f"{side}_{self.state}" if self.state else side

    def concrete(self, scene: "Scene | None", side: str = "ours", role: str = "therapist") -> str:
        """The path with real ids put in (or, with no scene, syntactically valid ones for resolving)."""
        if scene is None:
            values = dict.fromkeys(PLACEHOLDERS, "1")
            values.update(referral=str(uuid.uuid4()), client=str(uuid.uuid4()), username="therapist")
            return self.path.format(**values)
        return self.path.format(**_values(scene, side, self.label(side), snapshot="{snapshot}" in self.path))


PLACEHOLDERS = ("referral", "client", "consent", "withdrawal", "check", "site", "pilot", "template", "alert",
                "snapshot", "username")  # fmt: skip
MISSING_NUMBER = "2147480000"


def _values(scene: Scene, side: str, label: str, *, snapshot: bool) -> dict:
    w = scene.world
    if side == "missing":
        values = dict.fromkeys(PLACEHOLDERS, MISSING_NUMBER)
        values.update(referral=str(uuid.uuid4()), client=str(uuid.uuid4()), username="therapist")
        return values
    referral = scene.referrals[label]
    ours = side == "ours"
    return {
        "referral": str(referral.pk),
        "client": str(referral.client_id),
        "consent": scene.records.get((label, "consent"), MISSING_NUMBER),
        "withdrawal": scene.records.get((label, "withdrawal"), MISSING_NUMBER),
        "check": scene.records.get((label, "check"), MISSING_NUMBER),
        "site": (w.site if ours else w.medway_site).pk,
        "pilot": (w.pilot if ours else scene.other_pilot).pk,
        "template": w.template.pk,
        "alert": scene.alerts[side],
        "snapshot": scene.snapshot() if snapshot else MISSING_NUMBER,
        # The recorder, who is assigned directly, is the one an unassignment removes.
        "username": (w.therapist if ours else w.other_provider_therapist).get_username(),
    }


def _token_body(scene, role, side):
    user = scene.world.user(role)
    return {"username": user.get_username() if user else "nobody-at-all", "password": PASSWORD}


def _referral_body(scene, role, side):
    return {"client": {"local_reference": f"NEW-{role}", "year_of_birth": 1980}, "site": scene.world.site.pk,
            "referred_on": "2026-09-20", "source_of_referral": "B1", "how_heard": "leaflet_or_poster",
            "pathway": "self_referral"}  # fmt: skip


def _consent_body(scene, role, side):
    return {"template": scene.world.template.pk, "method": "verbal", "given_at": "2026-09-20T10:00:00Z",
            "scopes": ["treatment"], "acknowledgements": dict(ACKNOWLEDGED)}  # fmt: skip


def _assignment_body(scene, role, side):
    return {"therapist": "unassigned" if side == "ours" else "medway-therapist"}


def _group_body(scene, role, side):
    from django.utils import timezone

    alert = AccessEvent.objects.get(pk=scene.alerts["ours"])
    return {"actor": scene.world.work_coach.pk, "day": timezone.localtime(alert.occurred_at).date().isoformat(),
            "up_to": 2**40, "disposition": "no_concern", "note": "Reviewed: refused attempts."}  # fmt: skip


CHECK = {"checked_at": "2026-09-20T11:00:00Z", "stage": "during_therapy", "told_attendance_required": False,
         "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
         "employment_goal_raised_by": "nobody"}  # fmt: skip

# Who reaches a referral for each firewall purpose (consent.access.firewall.referrals_visible_to).
TEAM = {"ours": ("therapist", "lead"), "theirs": ("other_provider_therapist",)}
TEAM_AND_DPO = {"ours": ("therapist", "lead", "dpo"), "theirs": ("other_provider_therapist", "other_provider_dpo")}
DPO = {"ours": ("dpo",), "theirs": ("other_provider_dpo",)}
LEADS_OF_THE_PROVIDER = {"ours": ("lead", "other_team_lead"), "theirs": ()}
ASSIGNING_LEAD = {"ours": ("lead",), "theirs": ()}
# A DPO reads the log of their own organisation's records, which names its referrals and clients.
DPO_SEES = {"dpo": "kent", "other_provider_dpo": "medway"}
REPORT_READERS = {"ours": ("reviewer", "lead", "other_team_lead", "dpo", "other_provider_dpo"), "theirs": ("other_provider_dpo",)}
REPORT_FREEZERS = {"ours": ("lead", "other_team_lead", "dpo", "other_provider_dpo"), "theirs": ("other_provider_dpo",)}


def referral_row(method, suffix, who, ok, *, body=None, state="", why=""):
    return Row(method, "/api/v1/referrals/{referral}/" + suffix, per_object(ok, **who), body=body, state=state, why=why)


MATRIX = [
    # ---- signing in and the account's own details: anyone, no client data
    Row("POST", "/api/v1/auth/token/", everyone(OK, anonymous=BAD), body=_token_body,
        why="every account may sign in, a work coach too; an unknown name is a 400"),
    Row("POST", "/api/v1/auth/logout/", everyone(NO_CONTENT), why="signing out ends the caller's own token, no data"),
    Row("POST", "/api/v1/auth/logoutall/", everyone(NO_CONTENT), why="every token of the caller's own account, no data"),
    Row("GET", "/api/v1/me/", everyone(OK)),
    Row("GET", "/api/v1/", everyone(OK), why="the browsable API root lists endpoints, no data"),
    # ---- sites, pilots, templates: no client data
    Row("GET", "/api/v1/sites/", everyone(OK)),
    Row("GET", "/api/v1/sites/{site}/", per_object(OK, ours=SIGNED_IN, theirs=SIGNED_IN)),
    Row("GET", "/api/v1/pilots/", everyone(OK)),
    Row("GET", "/api/v1/pilots/{pilot}/", per_object(OK, ours=SIGNED_IN, theirs=SIGNED_IN)),
    Row("GET", "/api/v1/consent-templates/", everyone(OK), why="others get an empty list: templates are for recorders"),
    Row("GET", "/api/v1/consent-templates/{template}/", per_object(OK, ours=RECORDERS, theirs=RECORDERS)),
    # ---- referrals
    Row("GET", "/api/v1/referrals/", everyone(OK, work_coach=FORBIDDEN),
        sees={"therapist": "kent", "lead": "kent", "other_provider_therapist": "medway"},
        why="everyone else gets an empty list with count 0; a benefits-agency account a 403 with no count"),
    Row("POST", "/api/v1/referrals/",
        everyone(CREATED, other_provider_therapist=BAD, dpo=FORBIDDEN, other_provider_dpo=FORBIDDEN, reviewer=FORBIDDEN,
                 work_coach=FORBIDDEN, admin=FORBIDDEN),
        body=_referral_body, why="at a Kent site: Kent clinicians record; Medway's therapist is told to pick its own site"),
    referral_row("GET", "", TEAM, OK),
    referral_row("POST", "consents/", TEAM, CREATED, body=_consent_body),
    referral_row("POST", "withdrawals/", TEAM, CREATED, body={"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "felt_pressured"}),
    referral_row("POST", "voluntariness-checks/", TEAM, CREATED, body=CHECK),
    referral_row("POST", "discharge/", TEAM, CREATED, body={"discharged_on": "2026-10-02", "reason": "completed"}),
    referral_row("POST", "decline/", TEAM, CREATED, body={"declined_on": "2026-09-20"}, state="fresh"),
    referral_row("GET", "consents/{consent}/", TEAM, OK, state="withdrawn"),
    referral_row("GET", "withdrawals/{withdrawal}/", TEAM, OK, state="withdrawn"),
    referral_row("GET", "voluntariness-checks/{check}/", TEAM, OK, state="withdrawn"),
    referral_row("POST", "break-glass/", LEADS_OF_THE_PROVIDER, OK, body={"reason": "Safeguarding concern raised by reception"},
                 why="only a clinical lead of the referral's own organisation"),
    referral_row("POST", "assignments/", ASSIGNING_LEAD, CREATED, body=_assignment_body,
                 why="a lead who may change the referral assigns; the other team's lead must break glass first"),
    referral_row("DELETE", "assignments/{username}/", ASSIGNING_LEAD, REMOVED),
    referral_row("GET", "consent-receipt/", TEAM, OK),
    referral_row("GET", "fhir-consent/", TEAM_AND_DPO, OK),
    # ---- the access log (DPO)
    referral_row("GET", "access-history/", TEAM_AND_DPO, OK),
    referral_row("GET", "subject-access-export/", DPO, OK),
    Row("GET", "/api/v1/access-events/", everyone(FORBIDDEN, dpo=OK, other_provider_dpo=OK),
        sees=DPO_SEES),
    Row("GET", "/api/v1/access-events/alerts/", everyone(FORBIDDEN, dpo=OK, other_provider_dpo=OK),
        sees=DPO_SEES),
    Row("POST", "/api/v1/access-events/alerts/{alert}/disposition/", per_object(WRITTEN, refused=REFUSED, **DPO),
        body={"disposition": "no_concern", "note": "Reviewed: the work coach's attempt was refused."}, sees=DPO_SEES),
    Row("GET", "/api/v1/access-events/alert-groups/", everyone(FORBIDDEN, dpo=OK, other_provider_dpo=OK), sees=DPO_SEES),
    Row("POST", "/api/v1/access-events/alert-groups/disposition/", everyone(FORBIDDEN, dpo=CREATED, other_provider_dpo=CREATED),
        body=_group_body, sees=DPO_SEES, why="the work coach's alerts of the day: each DPO decides those on their own chain"),
    Row("GET", "/api/v1/access-events/{alert}/", per_object(OK, refused=REFUSED, **DPO), sees=DPO_SEES,
        why="one event of the DPO's own organisation's log"),
    Row("GET", "/api/v1/access-events/verify/", everyone(FORBIDDEN, dpo=OK, other_provider_dpo=OK)),
    # ---- compliance reports: suppressed counts only, never a row about a client
    Row("GET", "/api/v1/pilots/{pilot}/compliance-report/?period=2026-Q3", per_object(OK, refused=REFUSED, **REPORT_READERS),
        why="the reviewer of that pilot, and leads and DPOs of providers in it"),
    Row("POST", "/api/v1/pilots/{pilot}/compliance-reports/", per_object(WRITTEN, refused=REFUSED, **REPORT_FREEZERS),
        body={"period": "2026-Q3"}),
    Row("GET", "/api/v1/compliance-reports/{snapshot}/", per_object(OK, refused=REFUSED, ours=REPORT_READERS["ours"]),
        sides=("ours", "missing")),
    Row("GET", "/api/v1/compliance-reports/{snapshot}/verify/", per_object(OK, refused=REFUSED, ours=REPORT_READERS["ours"]),
        sides=("ours", "missing")),
    # ---- the browsable API's session sign-in, and the documentation: no data
    Row("GET", "/api/auth/login/", everyone(OK, anonymous=OK)),
    Row("POST", "/api/auth/logout/", everyone(OK, anonymous=OK), why="ends a session; a token caller has none to end"),
    Row("GET", "/api/schema/", everyone(OK, anonymous=OK), why="the OpenAPI schema describes the API, it holds no data"),
    Row("GET", "/api/docs/", everyone(OK, anonymous=OK)),
    Row("GET", "/api/redoc/", everyone(OK, anonymous=OK)),
]  # fmt: skip


# ---- walking the project's URLs ---------------------------------------------------------------------------------

# The Django admin is left out of the walk: it has its own staff sign-in (not the API's token), a benefits-
# agency account can never be staff (StaffProfile refuses it), and it registers no client-data model at all,
# which test_the_admin_registers_no_client_data_model below holds it to.
SKIPPED_PREFIXES = ("admin/",)
# The web pages have a matrix of their own (tests/test_web_permission_matrix.py), which walks them the same way.
SKIPPED_URLCONFS = ("web.urls",)


def project_patterns(patterns=None, prefix=""):
    """Every URL pattern of the project as (route, pattern), walking included resolvers recursively."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if any(route.startswith(skipped) for skipped in SKIPPED_PREFIXES):
            continue
        if isinstance(entry, URLResolver) and getattr(entry.urlconf_name, "__name__", entry.urlconf_name) in SKIPPED_URLCONFS:
            continue
        if isinstance(entry, URLResolver):
            yield from project_patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def methods_of(callback) -> set[str]:
    """The HTTP methods a DRF view answers (a viewset's routed actions, an APIView's handlers); empty for others."""
    # HEAD is answered by the GET handler (DRF routes it with GET), so GET's row covers it.
    if getattr(callback, "actions", None):
        return {method.upper() for method in callback.actions} - {"HEAD"}
    view_class = getattr(callback, "cls", None)
    if isinstance(view_class, type) and issubclass(view_class, APIView):
        return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}
    return set()


def _resolved(row: Row):
    try:
        return resolve(row.concrete(None).split("?")[0])
    except Resolver404:
        return None
