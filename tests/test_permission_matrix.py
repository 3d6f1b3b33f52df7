"""The permission matrix: every URL of the project, every role, on our referral and on another provider's.

Each row names one endpoint (a method and a path) and the status every role must get on "ours" (a Kent
referral recorded by `therapist`, or the Kent-side object), "theirs" (the same thing at another provider,
Medway) and "missing" (an id that does not exist). A URL pattern of the project with no row fails the suite,
so a new endpoint cannot arrive without someone deciding who may use it. A row whose path does not resolve
fails too: the endpoint it describes has gone.

Besides the status, every response is searched for the identifiers (referral id, client pseudonym, local
reference, NHS number) of the scene's referrals: a role may only ever find those the row allows it.
"""

import pytest
from django.contrib import admin
from django.db import transaction

from colocation.models import Role
from colocation.services import create_staff_member
from consent.access import firewall
from consent.models import Referral
from tests.conftest import PASSWORD, ROLES, api_client
from tests.endpoints import (
    MATRIX,
    OK,
    Row,
    Scene,
    _resolved,
    build_scene,
    methods_of,
    per_object,
    project_patterns,
)


@pytest.fixture
def scene(world) -> Scene:
    return build_scene(world)


def test_every_url_pattern_and_method_of_the_project_has_a_row_in_the_matrix():
    covered = {}
    for row in MATRIX:
        match = _resolved(row)
        if match is not None:
            covered.setdefault(match.func, set()).add(row.method)
    missing = []
    walked = list(project_patterns())
    for route, pattern in walked:
        callback = pattern.callback
        if callback not in covered:
            missing.append(f"{route} ({pattern.name}): no row at all")
            continue
        for method in sorted(methods_of(callback) - covered[callback]):
            missing.append(f"{method} {route} ({pattern.name}): no row for this method")
    assert len(walked) > 30, "the walk found too few patterns to be walking the project"
    assert not missing, "Endpoints with no row in the permission matrix:\n" + "\n".join(missing)


def test_the_admin_registers_no_client_data_model():
    client_data = {"consent", "access"}
    registered = {f"{model._meta.app_label}.{model.__name__}" for model in admin.site._registry}
    leaking = {name for name in registered if name.split(".")[0] in client_data and not name.endswith("ConsentTemplate")}
    assert not leaking, f"the admin would show client data: {leaking}"


# ---- running a row ------------------------------------------------------------------------------------------


def _expected(row: Row, role: str, side: str | None):
    value = row.expect[role]
    return value[side] if side is not None else value


def _matches(status: int, expected) -> bool:
    return status in expected if isinstance(expected, frozenset) else status == expected


def _allowed_labels(row: Row, scene: Scene, role: str, side: str | None, status: int) -> set[str]:
    """Which scene referrals a response may mention: those of the row's `sees` provider, or the target itself."""
    provider = row.sees.get(role)
    allowed = {label for label in scene.referrals if provider and scene.provider_of(label) == provider}
    if side not in (None, "missing") and status < 300 and ("{referral}" in row.path or "{client}" in row.path):
        allowed.add(row.label(side))
    return allowed


def call(scene: Scene, row: Row, role: str, side: str | None):
    """Make the row's request as the role, in a savepoint rolled back after, so every call sees the same scene."""
    client = api_client(scene.world.user(role))
    path = row.concrete(scene, side or "ours", role)
    body = row.body(scene, role, side) if callable(row.body) else row.body
    with transaction.atomic():
        response = getattr(client, row.method.lower())(path, data=body, format="json")
        content = b"".join(response.streaming_content) if response.streaming else response.content
        transaction.set_rollback(True)
    return path, response.status_code, content.decode("utf-8", "replace")


@pytest.mark.parametrize("row", MATRIX, ids=lambda row: row.id)
def test_each_role_gets_the_answer_the_matrix_gives(scene, row):
    if _resolved(row) is None:
        pytest.fail(f"no endpoint answers {row.id}: remove its row or restore the endpoint")
    if "{snapshot}" in row.path and scene.snapshot() is None:
        pytest.fail("no compliance-report snapshot could be frozen through POST /api/v1/pilots/{id}/compliance-reports/")
    identifiers = scene.identifiers()
    problems = []
    for role in ROLES:
        for side in row.sides if row.is_object_row else (None,):
            path, status, text = call(scene, row, role, side)
            expected = _expected(row, role, side)
            if not _matches(status, expected):
                problems.append(f"{role:>24} {side or '':>7}: {status}, expected {expected}  {row.method} {path}  {text[:160]}")
            allowed = _allowed_labels(row, scene, role, side, status)
            leaked = [f"{label}:{value}" for label, values in identifiers.items() if label not in allowed
                      for value in values if value in text]  # fmt: skip
            if leaked:
                problems.append(f"{role:>24} {side or '':>7}: body names {leaked}  {row.method} {path}")
    assert not problems, f"{row.id} ({row.why})\n" + "\n".join(problems)


def test_it_reports_a_row_for_an_endpoint_not_built_as_skipped_not_passed():
    unbuilt = Row("GET", "/api/v1/no-such-endpoint/{referral}/", per_object(OK, ours=("therapist",)))
    assert _resolved(unbuilt) is None


def test_the_scene_has_what_the_matrix_needs(scene):
    # Guards the matrix itself: the roles it relies on are who the scene says they are.
    w = scene.world
    assert firewall.may_act_on(w.therapist, w.referral, firewall.Purpose.VIEW)
    assert firewall.may_act_on(w.lead, w.referral, firewall.Purpose.VIEW)
    assert not firewall.may_act_on(w.unassigned_therapist, w.referral, firewall.Purpose.VIEW)
    assert not firewall.may_act_on(w.other_team_lead, w.referral, firewall.Purpose.VIEW)
    assert firewall.may_act_on(w.other_provider_therapist, w.medway_referral, firewall.Purpose.VIEW)
    assert w.unassigned_therapist.staff_profile.role == Role.THERAPIST
    assert Referral.objects.count() == 6


def test_an_extra_therapist_account_does_not_change_the_scene(scene):
    # A therapist of the same provider in another team, never assigned: sees no Kent referral.
    other = create_staff_member(username="thanet-therapist", password=PASSWORD, organisation=scene.world.kent,
                                role=Role.THERAPIST, team=scene.world.other_team)  # fmt: skip
    response = api_client(other).get("/api/v1/referrals/")
    assert response.status_code == 200 and response.json()["count"] == 0
