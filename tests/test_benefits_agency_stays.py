"""A benefits agency stays a benefits agency, and its accounts stay its own: in model validation (what the admin
runs) and in the database itself (triggers, SQLite and PostgreSQL), with a clear message, leaving every row as
it was.

Acceptance 2: a work coach put through every admin change form (its organisation, role, flags, groups and
permissions in the user form with its inline profile; the organisation's kind) is refused each time, and still
gets 403 on every client-data list.
"""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from colocation.models import Organisation, OrganisationKind, Role, StaffProfile, User
from consent.access.models import AccessEvent
from tests.conftest import PASSWORD, api_client
from tests.helpers import admin_form

CLIENT_DATA_LISTS = ("/api/v1/referrals/", "/api/v1/access-events/", "/api/v1/access-events/alerts/")


def _rows(world) -> dict:
    """Everything these refusals must leave as it was."""
    coach = world.work_coach
    return {
        "user": User.objects.filter(pk=coach.pk).values("is_staff", "is_superuser", "is_active", "benefits_agency_account").get(),
        "profile": StaffProfile.objects.filter(user=coach).values("organisation_id", "role", "team_id").get(),
        "profiles": StaffProfile.objects.count(),
        "groups": User.groups.through.objects.filter(user_id=coach.pk).count(),
        "permissions": User.user_permissions.through.objects.filter(user_id=coach.pk).count(),
        "kinds": dict(Organisation.objects.values_list("pk", "kind")),
        "authorisation_events": AccessEvent.objects.filter(action="authorisation_change").count(),
    }


def _refused_by_the_database(statement, params=()):
    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
    return str(refused.value)


def _assert_still_walled_off(world):
    client = api_client(world.work_coach)
    for path in CLIENT_DATA_LISTS:
        assert client.get(path).status_code == 403, path
    assert client.get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 404


# ---- the organisation's kind --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["other", "therapy_provider", "professional_body", "commissioner"])
def test_a_benefits_agency_keeps_its_kind_in_model_validation(world, kind):
    before = _rows(world)
    world.agency.kind = kind
    with pytest.raises(ValidationError) as refused:
        world.agency.save()
    assert "stays one" in str(refused.value.message_dict["kind"])
    assert _rows(world) == before


def test_a_benefits_agency_keeps_its_kind_in_the_database(world):
    before = _rows(world)
    message = _refused_by_the_database("UPDATE colocation_organisation SET kind = 'other' WHERE id = %s", [world.agency.pk])
    assert "a benefits agency stays a benefits agency" in message
    with pytest.raises(DatabaseError), transaction.atomic():
        Organisation.objects.filter(pk=world.agency.pk).update(kind=OrganisationKind.THERAPY_PROVIDER)
    assert _rows(world) == before


def test_an_organisation_with_people_or_sites_does_not_become_a_benefits_agency(world):
    # Why refused and not allowed: Kent's therapists would become benefits-agency accounts holding roles and
    # grants no agency may hold, and its clinic's records would be run by an agency.
    before = _rows(world)
    world.kent.kind = OrganisationKind.BENEFITS_AGENCY
    with pytest.raises(ValidationError) as refused:
        world.kent.save()
    assert "cannot become a benefits agency" in str(refused.value.message_dict["kind"])
    message = _refused_by_the_database(
        "UPDATE colocation_organisation SET kind = 'benefits_agency' WHERE id = %s", [world.kent.pk]
    )
    assert "cannot become a benefits agency" in message
    assert _rows(world) == before


def test_a_new_organisation_with_nobody_in_it_may_still_be_made_a_benefits_agency(world):
    dover = Organisation.objects.create(name="Jobcentre Plus, Dover", kind=OrganisationKind.OTHER)
    dover.kind = OrganisationKind.BENEFITS_AGENCY
    dover.save()
    assert Organisation.objects.get(pk=dover.pk).kind == OrganisationKind.BENEFITS_AGENCY


# ---- the account's organisation and role --------------------------------------------------------------------


@pytest.mark.parametrize(("organisation", "role"), [("kent", Role.WORK_COACH), ("kent", Role.THERAPIST),
                                                    ("agency", Role.ADMIN), ("bacp", Role.REVIEWER)])  # fmt: skip
def test_a_work_coachs_profile_cannot_be_moved_in_model_validation(world, organisation, role):
    before = _rows(world)
    profile = world.work_coach.staff_profile
    profile.organisation, profile.role = getattr(world, organisation), role
    with pytest.raises(ValidationError) as refused:
        profile.save()
    assert "benefits agency" in str(refused.value)
    assert _rows(world) == before


def test_a_work_coachs_profile_cannot_be_moved_in_the_database(world):
    before = _rows(world)
    profile = world.work_coach.staff_profile
    message = _refused_by_the_database(
        "UPDATE colocation_staffprofile SET organisation_id = %s, role = 'therapist' WHERE id = %s", [world.kent.pk, profile.pk]
    )
    assert "cannot be moved" in message or "work coach" in message
    _refused_by_the_database("UPDATE colocation_staffprofile SET organisation_id = %s WHERE id = %s", [world.kent.pk, profile.pk])
    _refused_by_the_database("UPDATE colocation_staffprofile SET role = 'dpo' WHERE id = %s", [profile.pk])
    assert _rows(world) == before


def test_deleting_a_work_coachs_profile_and_making_one_at_a_provider_is_refused_too(world):
    coach = world.work_coach
    StaffProfile.objects.filter(user=coach).delete()
    coach = User.objects.get(pk=coach.pk)
    assert coach.benefits_agency_account  # the mark outlives the profile

    with pytest.raises(ValidationError) as refused:
        StaffProfile.objects.create(user=coach, organisation=world.kent, role=Role.THERAPIST)
    assert "cannot be moved to another organisation" in str(refused.value.message_dict["organisation"])
    message = _refused_by_the_database(
        "INSERT INTO colocation_staffprofile (user_id, organisation_id, role) VALUES (%s, %s, 'therapist')",
        [coach.pk, world.kent.pk],
    )
    assert "cannot be moved" in message
    assert not StaffProfile.objects.filter(user=coach).exists()
    # And the account, still of the agency, reaches nothing.
    assert api_client(coach).get("/api/v1/referrals/").status_code == 403


def test_the_benefits_agency_mark_cannot_be_removed(world):
    before = _rows(world)
    message = _refused_by_the_database(
        "UPDATE colocation_user SET benefits_agency_account = %s WHERE id = %s", [False, world.work_coach.pk]
    )
    assert "cannot be removed" in message
    assert _rows(world) == before


# ---- flags, groups and permissions --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_work_coach_cannot_be_made_staff_or_superuser_in_the_database(world, flag):
    before = _rows(world)
    message = _refused_by_the_database(f"UPDATE colocation_user SET {flag} = %s WHERE id = %s", [True, world.work_coach.pk])  # noqa: S608
    assert "never staff or superuser" in message
    with pytest.raises(DatabaseError), transaction.atomic():
        User.objects.filter(pk=world.work_coach.pk).update(**{flag: True})
    assert _rows(world) == before


def test_a_work_coach_joins_no_group_and_holds_no_permission_in_the_database(world):
    before = _rows(world)
    with pytest.raises(DatabaseError) as refused, transaction.atomic():
        world.work_coach.groups.add(world.team.group)
    assert "joins no group" in str(refused.value)
    with pytest.raises(DatabaseError), transaction.atomic():
        world.work_coach.user_permissions.add(Permission.objects.get(codename="view_referral"))
    assert _rows(world) == before


# ---- acceptance 2: every admin change form --------------------------------------------------------------------


@pytest.fixture
def admin_client(world, client):
    client.force_login(world.admin)
    return client


def _user_url(world):
    return f"/admin/colocation/user/{world.work_coach.pk}/change/"


def test_the_admins_user_form_saves_the_work_coach_unchanged(world, admin_client):
    # The baseline: the same form, submitted as it came, is accepted, so each refusal below is the rule's.
    data = admin_form(admin_client, _user_url(world))
    assert "staff_profile-0-organisation" in data
    response = admin_client.post(_user_url(world), data)
    assert response.status_code == 302, response.content.decode()[:2000]


CHANGES = {
    "organisation to the provider": {"staff_profile-0-organisation": ["{kent}"]},
    "organisation and role to the provider's": {
        "staff_profile-0-organisation": ["{kent}"],
        "staff_profile-0-role": ["therapist"],
    },
    "role": {"staff_profile-0-role": ["therapist"]},
    "staff": {"is_staff": ["on"]},
    "superuser": {"is_superuser": ["on"]},
    "groups": {"groups": ["{team_group}"]},
    "permissions": {"user_permissions": ["{view_referral}"]},
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_change_to_a_work_coach_in_the_admins_user_form_is_refused(world, admin_client, change):
    data = admin_form(admin_client, _user_url(world))
    values = {"kent": world.kent.pk, "team_group": world.team.group_id,
              "view_referral": Permission.objects.get(codename="view_referral").pk}  # fmt: skip
    data.update({name: [v.format(**values) for v in new] for name, new in CHANGES[change].items()})
    before = _rows(world)

    response = admin_client.post(_user_url(world), data)

    assert response.status_code == 200  # the form again, with the error, not a redirect to the list
    page = response.content.decode().replace("&#x27;", "'")
    refusals = (
        "is an account of a benefits agency",
        "cannot be moved to another organisation",
        "its role stays work_coach",
        "can only have the work_coach role",
        "A work_coach must belong to a benefits agency",
    )
    assert "errorlist" in page and any(refusal in page for refusal in refusals), page[:3000]
    assert _rows(world) == before
    _assert_still_walled_off(world)


def test_the_admins_organisation_form_refuses_to_change_a_benefits_agencys_kind(world, admin_client):
    url = f"/admin/colocation/organisation/{world.agency.pk}/change/"
    data = admin_form(admin_client, url)
    assert admin_client.post(url, data).status_code == 302  # unchanged: accepted
    before = _rows(world)
    for kind in ("other", "therapy_provider"):
        data["kind"] = [kind]
        response = admin_client.post(url, data)
        assert response.status_code == 200
        assert "stays one" in response.content.decode()
        assert _rows(world) == before
    _assert_still_walled_off(world)


def test_a_work_coach_cannot_even_sign_in_to_the_admin(world, client):
    client.post("/admin/login/", {"username": "workcoach", "password": PASSWORD})
    assert client.get("/admin/").status_code == 302
