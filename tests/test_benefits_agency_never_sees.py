"""No benefits-agency account ever sees client data, whatever it was given.

The work coach here is made everything an attacker or a careless administrator could make it: superuser
and staff set straight in the database (past the model's check, with the database's own triggers dropped), a member of the clinical team groups,
holder of every model permission, and owner of guardian permission rows on every referral written with
raw SQL (past ReferralUserObjectPermission.save). It then calls every operation of the OpenAPI schema
with real ids and valid bodies: 404 on every referral, 403 on every client-data list, and not one
identifier of a client in any response body.
"""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from guardian.core import ObjectPermissionChecker

from colocation import triggers as colocation_triggers
from colocation.models import User
from consent.access.models import AccessEvent, ReferralGroupObjectPermission, ReferralUserObjectPermission
from consent.models import Referral
from tests.conftest import PASSWORD, api_client
from tests.endpoints import MATRIX, build_scene

# Operations that carry no client data and that a work coach may use (docs/architecture.md, "Who uses it"): signing
# in, its own details, sites and pilots. Consent templates are not client data either; the list is empty
# for anyone who does not record referrals.
NOT_CLIENT_DATA = {
    ("POST", "/api/v1/auth/token/"),
    ("POST", "/api/v1/auth/logout/"),
    ("POST", "/api/v1/auth/logoutall/"),
    ("GET", "/api/v1/me/"),
    ("GET", "/api/v1/sites/"),
    ("GET", "/api/v1/sites/{}/"),
    ("GET", "/api/v1/pilots/"),
    ("GET", "/api/v1/pilots/{}/"),
    ("GET", "/api/v1/consent-templates/"),
}
PLACEHOLDER = re.compile(r"\{[^}]+\}")


def _shape(path: str) -> str:
    return PLACEHOLDER.sub("{}", path.split("?")[0])


def _operations() -> list[tuple[str, str, dict]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(method.upper(), path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def _escalate(work_coach, referrals) -> User:
    """Give the work coach every flag, group and permission there is, bypassing every check in the models and
    the database's own refusals (colocation.triggers), as someone with the database's owner rights could."""
    colocation_triggers.remove(connection)
    try:
        return _escalate_past_the_models(work_coach, referrals)
    finally:
        colocation_triggers.install(connection)


def _escalate_past_the_models(work_coach, referrals) -> User:
    User.objects.filter(pk=work_coach.pk).update(is_superuser=True, is_staff=True)
    work_coach.groups.add(*Group.objects.all())
    work_coach.user_permissions.add(*Permission.objects.all())
    own_group = Group.objects.create(name="work-coach-own-group")
    work_coach.groups.add(own_group)
    referral_perms = list(Permission.objects.filter(content_type__app_label="consent", content_type__model="referral"))
    with connection.cursor() as cursor:
        for referral in referrals:
            for permission in referral_perms:
                cursor.execute(
                    f"INSERT INTO {ReferralUserObjectPermission._meta.db_table} (permission_id, user_id, content_object_id) "
                    "VALUES (%s, %s, %s)",
                    [permission.pk, work_coach.pk, referral.pk.hex if connection.vendor == "sqlite" else referral.pk],
                )
                cursor.execute(
                    f"INSERT INTO {ReferralGroupObjectPermission._meta.db_table} (permission_id, group_id, content_object_id) "
                    "VALUES (%s, %s, %s)",
                    [permission.pk, own_group.pk, referral.pk.hex if connection.vendor == "sqlite" else referral.pk],
                )
    return User.objects.get(pk=work_coach.pk)


@pytest.fixture
def escalated(world):
    scene = build_scene(world)
    referrals = list(Referral.objects.all())
    coach = _escalate(world.work_coach, referrals)
    # The escalation is real: Django and guardian on their own would now let this account see everything.
    assert coach.is_superuser and coach.is_staff
    assert coach.groups.filter(pk=world.team.group_id).exists()
    checker = ObjectPermissionChecker(coach)
    # A fresh account object without superuser, so guardian answers from the raw rows alone.
    plain = User.objects.get(pk=coach.pk)
    plain.is_superuser = False
    assert all(ObjectPermissionChecker(plain).has_perm("view_referral", r) for r in referrals)
    assert all(checker.has_perm("change_referral", r) for r in referrals)
    assert ReferralUserObjectPermission.objects.filter(user=coach).count() == len(referrals) * 4
    return scene, coach


def _path_values(scene, path: str, referral_label: str) -> dict:
    """Real ids for the path's parameters, chosen by what the path is about."""
    w = scene.world
    referral = scene.referrals[referral_label]
    values = {}
    for name in PLACEHOLDER.findall(path):
        key = name.strip("{}")
        if path.startswith("/api/v1/referrals/") and key in ("id", "pk", "referral_id"):
            values[key] = str(referral.pk)
        elif key == "record_id":
            kind = "consent" if "/consents/" in path else "withdrawal" if "/withdrawals/" in path else "check"
            values[key] = str(scene.records.get((referral_label, kind), 1))
        elif "client" in key or "pseudonym" in key or path.startswith("/api/v1/clients/"):
            values[key] = str(referral.client_id)
        elif path.startswith("/api/v1/sites/"):
            values[key] = str(w.site.pk)
        elif path.startswith("/api/v1/pilots/"):
            values[key] = str(w.pilot.pk)
        elif path.startswith("/api/v1/consent-templates/"):
            values[key] = str(w.template.pk)
        elif "alert" in path:
            values[key] = str(scene.alerts["ours"])
        else:
            # Anything else (a snapshot, a future endpoint): the referral's id is the most dangerous guess.
            values[key] = str(referral.pk)
    return values


def _body(scene, method: str, path: str):
    for row in MATRIX:
        if row.method == method and _shape(row.path) == _shape(path):
            return row.body(scene, "work_coach", "ours") if callable(row.body) else row.body
    return {}


def _expected(method: str, path: str):
    """404 for anything about one referral or client; 403 for a client-data list; refused for the rest."""
    shape = _shape(path)
    if (method, shape) in NOT_CLIENT_DATA:
        return None
    if shape.startswith(("/api/v1/referrals/{}", "/api/v1/clients/{}")):
        return {404}
    if "{}" not in shape:
        return {403}
    return {403, 404}


def test_an_escalated_work_coach_gets_nothing_from_any_operation_of_the_schema(escalated):
    scene, coach = escalated
    identifiers = scene.identifiers()
    secrets = {value for values in identifiers.values() for value in values}
    operations = _operations()
    assert any(path == "/api/v1/referrals/{id}/" for _, path, _ in operations), "the schema did not load the API"
    client = api_client(coach)
    problems, calls = [], 0
    for method, path, _ in operations:
        if path.startswith("/api/v1/auth/logout"):
            continue  # signing out carries no client data, and would end this client's token for the calls after it
        for label in ("ours", "theirs", "ours_withdrawn"):
            concrete = path.format(**_path_values(scene, path, label))
            query = "?period=2026-Q3" if "compliance-report" in path else ""
            response = getattr(client, method.lower())(concrete + query, data=_body(scene, method, path), format="json")
            calls += 1
            text = response.content.decode("utf-8", "replace")
            expected = _expected(method, path)
            if expected is not None and response.status_code not in expected:
                problems.append(f"{method} {concrete}: {response.status_code}, expected {sorted(expected)}: {text[:200]}")
            if response.status_code >= 500:
                problems.append(f"{method} {concrete}: server error {response.status_code}")
            leaked = sorted(secret for secret in secrets if secret in text)
            if leaked:
                problems.append(f"{method} {concrete}: body contains client identifiers {leaked}")
    assert not problems, "\n".join(problems)
    assert calls >= 3 * 20


def test_the_escalated_work_coach_gets_no_count_and_no_rows_from_the_referral_list(escalated):
    scene, coach = escalated
    for query in ("", "?site=%d" % scene.world.site.pk, "?status=active", "?page_size=200"):
        response = api_client(coach).get("/api/v1/referrals/" + query)
        assert response.status_code == 403
        body = response.json()
        assert "count" not in body and "results" not in body


def test_every_refusal_is_logged_as_denied_and_nothing_is_logged_as_allowed(escalated):
    scene, coach = escalated
    client = api_client(coach)
    before = AccessEvent.objects.filter(actor_id=coach.pk, outcome="denied").count()
    for label in ("ours", "theirs"):
        assert client.get(f"/api/v1/referrals/{scene.referrals[label].pk}/").status_code == 404
    assert client.get("/api/v1/referrals/").status_code == 403
    denied = AccessEvent.objects.filter(actor_id=coach.pk, outcome="denied")
    assert denied.count() - before >= 3
    # The DPO of each provider sees the attempt on their own chain, as an alert naming the benefits agency.
    assert denied.filter(chain=scene.world.kent).exclude(alert_reasons="").exists()
    assert denied.filter(chain=scene.world.medway).exclude(alert_reasons="").exists()
    assert all("benefits_agency" in event.alert_reasons for event in denied)
    assert not AccessEvent.objects.filter(actor_id=coach.pk, outcome="allowed").exclude(referral_id=None).exists()


def test_the_escalated_work_coach_can_still_sign_in_and_read_sites_and_pilots(escalated):
    scene, coach = escalated
    response = api_client().post("/api/v1/auth/token/", {"username": coach.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    client = api_client(coach)
    assert client.get("/api/v1/sites/").status_code == 200
    assert client.get(f"/api/v1/pilots/{scene.world.pilot.pk}/").status_code == 200
    assert client.get("/api/v1/consent-templates/").json()["count"] == 0
