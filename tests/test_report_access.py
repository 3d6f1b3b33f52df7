"""Who may read a pilot's compliance report and its snapshots, and who may freeze one."""

import pytest

from colocation.models import OrganisationKind, Role
from colocation.services import create_staff_member
from consent.access.models import AccessEvent
from consent.reports.models import ComplianceReportSnapshot
from consent.reports.periods import parse_period
from consent.reports.snapshots import freeze_report
from tests.conftest import PASSWORD, api_client
from tests.factories import OrganisationFactory, SiteFactory

Q3 = "period=2026-Q3"


def _report(user, pilot, query=Q3):
    return api_client(user).get(f"/api/v1/pilots/{pilot.pk}/compliance-report/?{query}")


@pytest.mark.parametrize("role", ["reviewer", "lead", "other_team_lead", "dpo", "other_provider_dpo"])
def test_it_serves_the_report_to_reviewers_of_the_pilot_and_leads_and_dpos_of_its_providers(world, role):
    response = _report(world.user(role), world.pilot)
    assert response.status_code == 200
    assert response.json()["pilot"]["id"] == world.pilot.pk


@pytest.mark.parametrize("role", ["therapist", "unassigned_therapist", "other_provider_therapist", "admin"])
def test_it_answers_not_found_to_roles_without_a_report(world, role):
    response = _report(world.user(role), world.pilot)
    assert response.status_code == 404
    assert "referrals_received" not in response.content.decode()


def test_it_validates_ownership_a_reviewer_of_another_body_gets_not_found(world):
    ukcp = OrganisationFactory(name="UKCP", kind=OrganisationKind.PROFESSIONAL_BODY)
    outsider = create_staff_member(username="ukcp-reviewer", password=PASSWORD, organisation=ukcp, role=Role.REVIEWER)
    assert _report(outsider, world.pilot).status_code == 404
    # The same answer as for a pilot that does not exist.
    missing = api_client(world.reviewer).get("/api/v1/pilots/999999/compliance-report/?period=2026-Q3")
    assert missing.status_code == 404
    assert _report(outsider, world.pilot).json() == missing.json()


def test_it_validates_ownership_a_lead_of_a_provider_outside_the_pilot_gets_not_found(world):
    elsewhere = OrganisationFactory(name="Thanet minds", kind=OrganisationKind.THERAPY_PROVIDER)
    SiteFactory(provider=elsewhere)  # a site, but not in the pilot
    lead = create_staff_member(username="thanet-minds-lead", password=PASSWORD, organisation=elsewhere, role=Role.CLINICAL_LEAD)
    assert _report(lead, world.pilot).status_code == 404


def test_it_refuses_a_benefits_agency_account_and_logs_the_attempt(world):
    before = AccessEvent.objects.count()
    response = _report(world.work_coach, world.pilot)
    assert response.status_code == 403
    # Nothing but the refusal: no figure, no count.
    assert response.json() == {"detail": "This account may not see client data."}
    denied = AccessEvent.objects.filter(actor_id=world.work_coach.pk, outcome="denied")
    assert AccessEvent.objects.count() > before
    # One event on each co-located provider's chain, each raising an alert for its DPO.
    assert set(denied.values_list("chain_id", flat=True)) == {world.kent.pk, world.medway.pk}
    assert all("benefits_agency" in reasons for reasons in denied.values_list("alert_reasons", flat=True))


def test_it_refuses_a_benefits_agency_account_every_format_and_every_snapshot_route(world):
    snapshot = freeze_report(pilot=world.pilot, period=parse_period("2026-Q3"), author=world.dpo)
    coach = api_client(world.work_coach)
    for url in (
        f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3&format=csv",
        f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3&format=html",
        f"/api/v1/compliance-reports/{snapshot.pk}/",
        f"/api/v1/compliance-reports/{snapshot.pk}/verify/",
    ):
        response = coach.get(url)
        assert response.status_code == 403, url
        assert response["Content-Type"].startswith("application/json"), url
    assert (
        coach.post(f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", {"period": "2026-Q3"}, format="json").status_code
        == 403
    )
    assert ComplianceReportSnapshot.objects.count() == 1


def test_it_asks_anonymous_callers_to_sign_in(world):
    assert api_client().get(f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?{Q3}").status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("period=2026-Q5", "period"),
        ("period=Q3-2026", "period"),
        ("period=1999", "period"),
        ("period=2026-07-15", "period"),
        ("", "period"),
        # Arbitrary windows are gone: from and to are refused, with or without a period.
        ("from=2026-07-01", "from"),
        ("to=2026-07-01", "to"),
        ("from=2026-07-01&to=2026-07-01", "from"),
        ("period=2026-Q3&from=2026-07-01&to=2026-07-31", "from"),
        ("period=2026-Q3&site=1", "site"),
        ("period=2026-Q3&format=xml", "format"),
    ],
)
def test_it_answers_a_bad_period_with_a_400_showing_the_accepted_forms(world, query, field):
    response = _report(world.reviewer, world.pilot, query)
    assert response.status_code == 400
    body = response.json()
    assert field in body["errors"]
    message = " ".join(body["errors"][field])
    if field == "format":
        assert "csv" in message and "html" in message
    elif field == "site":
        assert "period" in message  # any other parameter: the ones accepted
    else:
        for form in ("2026", "2026-Q3", "2026-07", "pilot"):
            assert form in message


def test_a_period_outside_the_pilot_is_a_400_naming_the_pilots_dates(world):
    response = _report(world.reviewer, world.pilot, "period=2025-Q3")
    assert response.status_code == 400
    message = " ".join(response.json()["errors"]["period"])
    assert world.pilot.starts_on.isoformat() in message and world.pilot.ends_on.isoformat() in message


def test_a_bad_period_is_json_whatever_format_was_asked_for(world):
    response = _report(world.reviewer, world.pilot, "period=nope&format=html")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "period" in response.json()["errors"]


@pytest.mark.parametrize("role", ["lead", "dpo", "other_provider_dpo"])
def test_leads_and_dpos_of_the_pilot_may_freeze_a_snapshot(world, role):
    response = api_client(world.user(role)).post(
        f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", {"period": "2026-Q3"}, format="json"
    )
    assert response.status_code == 201
    assert ComplianceReportSnapshot.objects.get().created_by == world.user(role)


@pytest.mark.parametrize("role", ["reviewer", "therapist", "admin"])
def test_others_may_not_freeze_a_snapshot(world, role):
    response = api_client(world.user(role)).post(
        f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", {"period": "2026-Q3"}, format="json"
    )
    assert response.status_code == 404
    assert not ComplianceReportSnapshot.objects.exists()


def test_freezing_with_a_bad_period_is_a_400_and_stores_nothing(world):
    client = api_client(world.lead)
    bodies = (
        {"period": "2026-13"}, {"from": "2026-07-01"}, {"periode": "2026-Q3"}, ["2026-Q3"], {}, {"period": 2026},
        {"period": None}, {"period": ["2026-Q3"]}, {"from": 20260701, "to": "2026-07-02"}, {"from": {}, "to": "2026-07-02"},
    )  # fmt: skip
    for body in bodies:
        response = client.post(f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["errors"], body
    assert not ComplianceReportSnapshot.objects.exists()


def test_a_snapshot_is_readable_by_those_who_may_read_its_pilot_report_only(world):
    snapshot = freeze_report(pilot=world.pilot, period=parse_period("2026-Q3"), author=world.lead)
    ukcp = OrganisationFactory(name="UKCP", kind=OrganisationKind.PROFESSIONAL_BODY)
    outsider = create_staff_member(username="ukcp-reviewer", password=PASSWORD, organisation=ukcp, role=Role.REVIEWER)
    for user in (world.reviewer, world.lead, world.dpo, world.other_provider_dpo):
        assert api_client(user).get(f"/api/v1/compliance-reports/{snapshot.pk}/").status_code == 200
        assert api_client(user).get(f"/api/v1/compliance-reports/{snapshot.pk}/verify/").status_code == 200
    for user in (outsider, world.therapist):
        assert api_client(user).get(f"/api/v1/compliance-reports/{snapshot.pk}/").status_code == 404
        assert api_client(user).get(f"/api/v1/compliance-reports/{snapshot.pk}/verify/").status_code == 404
