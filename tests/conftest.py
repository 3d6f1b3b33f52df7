"""Standing users, one per role, and helpers shared by every test module.

The world: provider Kent (team "Canterbury"), another provider Medway, a benefits agency hosting a Kent
site, a professional body overseeing a pilot. `world.referral` was recorded by `world.therapist`.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import pytest
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from colocation.models import OrganisationKind, Role
from colocation.services import create_clinical_team, create_staff_member
from consent import services
from consent.access import triggers
from consent.access.log import AccessContext
from consent.reports.cells import rebuild_cells
from tests.factories import ACKNOWLEDGED, ConsentTemplateFactory, OrganisationFactory, PilotFactory, SiteFactory, at

PASSWORD = "a-long-test-password-2026"
ROLES = ("therapist", "unassigned_therapist", "lead", "other_team_lead", "other_provider_therapist", "dpo",
         "other_provider_dpo", "reviewer", "work_coach", "admin", "anonymous")  # fmt: skip


@dataclass
class World:
    kent: object
    medway: object
    agency: object
    bacp: object
    site: object
    medway_site: object
    pilot: object
    template: object
    team: object
    other_team: object
    therapist: object
    unassigned_therapist: object
    lead: object
    other_team_lead: object
    other_provider_therapist: object
    dpo: object
    other_provider_dpo: object
    reviewer: object
    work_coach: object
    admin: object
    referral: object = None
    medway_referral: object = None

    def user(self, role: str):
        return None if role == "anonymous" else getattr(self, role)


def make_referral(user, site, *, local_reference=None, referred_on=date(2026, 9, 14), pathway="self_referral",
                  source_of_referral="B1", how_heard="leaflet_or_poster", nhs_number="", year_of_birth=None):  # fmt: skip
    """Record a referral through the service, as the user would at intake."""
    import uuid

    with_context = AccessContext.for_command(user, "test")
    return services.create_referral(
        context=with_context, local_reference=local_reference or f"REF-{uuid.uuid4().hex[:8]}", nhs_number=nhs_number,
        year_of_birth=year_of_birth, site=site, referred_on=referred_on, source_of_referral=source_of_referral,
        how_heard=how_heard, pathway=pathway,
    )  # fmt: skip


def give_consent(user, referral, template, *, given_on=None):
    return services.record_consent(
        context=AccessContext.for_command(user, "test"), referral_id=referral.pk, template=template, method="verbal",
        given_at=at(given_on or referral.referred_on), scopes=["treatment"], acknowledgements=dict(ACKNOWLEDGED),
    )  # fmt: skip


def intake_check(user, referral, *, day=None, **overrides):
    values = dict(told_attendance_required=False, sanction_mentioned=False, feels_free_to_stop=True,
                  goals_set_by_client=True, employment_goal_raised_by="nobody")  # fmt: skip
    values.update(overrides)
    stage = values.pop("stage", "intake")
    return services.record_voluntariness_check(
        context=AccessContext.for_command(user, "test"), referral_id=referral.pk,
        checked_at=at(day or referral.referred_on, 11), stage=stage, **values,
    )  # fmt: skip


@pytest.fixture
def world(db) -> World:
    kent = OrganisationFactory(name="Kent talking therapies", kind=OrganisationKind.THERAPY_PROVIDER)
    medway = OrganisationFactory(name="Medway wellbeing", kind=OrganisationKind.THERAPY_PROVIDER)
    agency = OrganisationFactory(name="Jobcentre Plus, Canterbury", kind=OrganisationKind.BENEFITS_AGENCY)
    bacp = OrganisationFactory(name="BACP", kind=OrganisationKind.PROFESSIONAL_BODY)
    site = SiteFactory(name="Canterbury Jobcentre clinic", host_organisation=agency, provider=kent)
    medway_site = SiteFactory(name="Medway library", host_organisation=agency, provider=medway)
    pilot = PilotFactory(name="Canterbury pilot")
    pilot.sites.set([site, medway_site])
    pilot.overseen_by.set([bacp])
    # Counted once, as a deployment's first report of it would; every intake and record then keeps its cells.
    rebuild_cells(pilot)
    team = create_clinical_team(organisation=kent, name="Canterbury")
    other_team = create_clinical_team(organisation=kent, name="Thanet")
    medway_team = create_clinical_team(organisation=medway, name="Medway")

    def staff(username, organisation, role, team=None, superuser=False):
        return create_staff_member(username=username, password=PASSWORD, organisation=organisation, role=role,
                                   team=team, is_superuser=superuser)  # fmt: skip

    w = World(
        kent=kent, medway=medway, agency=agency, bacp=bacp, site=site, medway_site=medway_site, pilot=pilot,
        template=ConsentTemplateFactory(), team=team, other_team=other_team,
        therapist=staff("therapist", kent, Role.THERAPIST, team),
        unassigned_therapist=staff("unassigned", kent, Role.THERAPIST, team),
        lead=staff("lead", kent, Role.CLINICAL_LEAD, team),
        other_team_lead=staff("thanet-lead", kent, Role.CLINICAL_LEAD, other_team),
        other_provider_therapist=staff("medway-therapist", medway, Role.THERAPIST, medway_team),
        dpo=staff("dpo", kent, Role.DPO),
        other_provider_dpo=staff("medway-dpo", medway, Role.DPO),
        reviewer=staff("reviewer", bacp, Role.REVIEWER),
        work_coach=staff("workcoach", agency, Role.WORK_COACH),
        admin=staff("admin", kent, Role.ADMIN, superuser=True),
    )  # fmt: skip
    w.referral = make_referral(w.therapist, site, local_reference="KTT-000123", nhs_number="9434765919", year_of_birth=1979)
    w.medway_referral = make_referral(w.other_provider_therapist, medway_site, local_reference="MWS-000001")
    return w


def issue_token(user) -> str:
    """A new API token for the user (django-rest-knox: only its hash is stored), as signing in would give."""
    _, token = AuthToken.objects.create(user=user)
    return token


def api_client(user=None) -> APIClient:
    """An API client signed in with a token of the user's, as a real caller would be.

    One token per user object for the test (kept on it), so making a second client writes no row a test counts.
    """
    client = APIClient()
    if user is not None:
        if getattr(user, "_test_token", None) is None:
            user._test_token = issue_token(user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {user._test_token}")
    return client


@pytest.fixture
def client_for():
    return api_client


@pytest.fixture
def append_only_relaxed_for_flush(django_db_blocker):
    """For transactional tests: the append-only triggers would refuse the flush between tests.

    Request this fixture BEFORE `transactional_db` in the test's arguments: it drops the triggers just
    before the flush and puts them back after it.
    """
    yield
    with django_db_blocker.unblock():
        triggers.install(connection)


@pytest.fixture
def drop_append_only_triggers_at_teardown(django_db_blocker):
    """Request AFTER `transactional_db` (and after append_only_relaxed_for_flush) so it runs before the flush."""
    yield
    with django_db_blocker.unblock():
        triggers.remove(connection)


@contextmanager
def behind_the_triggers():
    """What an insider with the database can do: drop the append-only triggers, change rows, put them back."""
    triggers.remove(connection)
    try:
        yield
    finally:
        triggers.install(connection)


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: run with DATABASE_URL set")
