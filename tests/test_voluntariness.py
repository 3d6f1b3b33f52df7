"""A referral's voluntariness, computed from its records as docs/architecture.md "Voluntariness of a referral" says,
and returned with every referral: one test per status and per reason, read from the API body."""

import pytest

from tests.conftest import api_client

MANDATED = "pathway is mandated_assessment or benefit_condition"
TOLD_REQUIRED = "a check recorded that the client was told attendance is required"
SANCTION = "a check recorded that a sanction was mentioned"
NOT_FREE = "a check recorded that the client does not feel free to stop"
GOAL_BY_AGENCY = "a check recorded an employment goal raised by the benefits agency"
PRESSURED = "the client withdrew citing pressure"
NO_CONSENT = "no explicit consent recorded yet"
NO_INTAKE_CHECK = "no intake voluntariness check recorded yet"

CLEAR_CHECK = {
    "checked_at": "2026-09-14T10:10:00Z", "stage": "intake", "told_attendance_required": False,
    "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
    "employment_goal_raised_by": "nobody",
}  # fmt: skip


class Episode:
    """A referral recorded and followed through the API, as a therapist would."""

    def __init__(self, world, pathway="self_referral"):
        self.world = world
        self.client = api_client(world.therapist)
        response = self.client.post(
            "/api/v1/referrals/",
            {"client": {"local_reference": f"VOL-{pathway}"}, "site": world.site.pk, "referred_on": "2026-09-14",
             "source_of_referral": "M5" if pathway != "self_referral" else "B1", "how_heard": "work_coach_suggested",
             "pathway": pathway},
            format="json",
        )  # fmt: skip
        assert response.status_code == 201, response.json()
        self.id = response.json()["id"]
        self.last = response.json()

    def post(self, what, body):
        response = self.client.post(f"/api/v1/referrals/{self.id}/{what}/", body, format="json")
        assert response.status_code == 201, response.json()
        self.last = response.json()
        return self

    def consent(self):
        return self.post("consents", {
            "template": self.world.template.pk, "method": "verbal", "given_at": "2026-09-14T10:05:00Z", "scopes": ["treatment"],
            "acknowledgements": {"attendance_is_optional": True, "no_effect_on_benefits": True,
                                 "service_separate_from_jobcentre": True, "nothing_shared_with_jobcentre": True,
                                 "free_to_withdraw": True},
        })  # fmt: skip

    def check(self, **changes):
        return self.post("voluntariness-checks", {**CLEAR_CHECK, **changes})

    def withdraw(self, reason):
        return self.post("withdrawals", {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": reason})

    def voluntariness(self) -> dict:
        """As the detail returns it; the list row and the response to the last write must say the same."""
        detail = self.client.get(f"/api/v1/referrals/{self.id}/").json()["voluntariness"]
        listed = self.client.get("/api/v1/referrals/", {"page_size": 200}).json()["results"]
        [row] = [r for r in listed if r["id"] == self.id]
        assert row["voluntariness"] == detail == self.last["voluntariness"]
        return detail


def consented(world, **kwargs) -> Episode:
    return Episode(world, **kwargs).consent()


# ---- voluntary ---------------------------------------------------------------------------------------------


def test_it_is_voluntary_with_explicit_consent_and_a_clear_intake_check(world):
    assert consented(world).check().voluntariness() == {"status": "voluntary", "reasons": []}


@pytest.mark.parametrize("raised_by", ["nobody", "client", "therapist"])
def test_an_employment_goal_raised_by_anyone_but_the_benefits_agency_stays_voluntary(world, raised_by):
    assert consented(world).check(employment_goal_raised_by=raised_by).voluntariness()["status"] == "voluntary"


@pytest.mark.parametrize("reason", ["no_longer_wanted", "moved_or_unreachable", "other"])
def test_a_withdrawal_for_any_reason_but_pressure_stays_voluntary(world, reason):
    episode = consented(world).check().withdraw(reason)
    assert episode.last["status"] == "withdrawn"
    assert episode.voluntariness() == {"status": "voluntary", "reasons": []}


def test_it_stays_voluntary_after_discharge(world):
    episode = consented(world).check().post("discharge", {"discharged_on": "2026-11-01", "reason": "completed"})
    assert episode.voluntariness() == {"status": "voluntary", "reasons": []}


# ---- unknown -----------------------------------------------------------------------------------------------


def test_it_is_unknown_until_explicit_consent_is_recorded(world):
    assert Episode(world).check().voluntariness() == {"status": "unknown", "reasons": [NO_CONSENT]}


def test_it_is_unknown_until_an_intake_check_is_recorded(world):
    assert consented(world).voluntariness() == {"status": "unknown", "reasons": [NO_INTAKE_CHECK]}


def test_a_check_at_another_stage_is_not_an_intake_check(world):
    episode = consented(world).check(stage="during_therapy", checked_at="2026-10-01T10:00:00Z")
    assert episode.voluntariness() == {"status": "unknown", "reasons": [NO_INTAKE_CHECK]}


def test_a_new_referral_is_unknown_for_both_reasons(world):
    assert Episode(world).voluntariness() == {"status": "unknown", "reasons": [NO_CONSENT, NO_INTAKE_CHECK]}


def test_a_declined_referral_never_consented_so_stays_unknown(world):
    episode = Episode(world).post("decline", {"declined_on": "2026-09-14"})
    assert episode.last["status"] == "declined"
    assert episode.voluntariness()["status"] == "unknown"


# ---- not voluntary -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pathway", ["mandated_assessment", "benefit_condition"])
def test_a_mandated_pathway_is_not_voluntary_whatever_the_records_say(world, pathway):
    assert consented(world, pathway=pathway).check().voluntariness() == {"status": "not_voluntary", "reasons": [MANDATED]}


@pytest.mark.parametrize("pathway", ["mandated_assessment", "benefit_condition"])
def test_a_mandated_pathway_is_not_voluntary_even_before_consent(world, pathway):
    assert Episode(world, pathway=pathway).voluntariness() == {"status": "not_voluntary", "reasons": [MANDATED]}


def test_a_client_signposted_by_a_work_coach_is_still_voluntary_with_the_records(world):
    assert consented(world, pathway="signposted_by_work_coach").check().voluntariness()["status"] == "voluntary"


@pytest.mark.parametrize("stage", ["intake", "during_therapy", "discharge"])
def test_a_client_told_attendance_is_required_is_not_voluntary(world, stage):
    episode = consented(world).check().check(stage=stage, told_attendance_required=True, checked_at="2026-10-02T10:00:00Z")
    assert episode.voluntariness() == {"status": "not_voluntary", "reasons": [TOLD_REQUIRED]}


def test_a_sanction_mentioned_is_not_voluntary(world):
    assert consented(world).check(sanction_mentioned=True).voluntariness() == {"status": "not_voluntary", "reasons": [SANCTION]}


# ---- concern -----------------------------------------------------------------------------------------------


def test_a_client_who_does_not_feel_free_to_stop_is_a_concern(world):
    assert consented(world).check(feels_free_to_stop=False).voluntariness() == {"status": "concern", "reasons": [NOT_FREE]}


def test_an_employment_goal_raised_by_the_benefits_agency_is_a_concern(world):
    episode = consented(world).check(employment_goal_raised_by="benefits_agency")
    assert episode.voluntariness() == {"status": "concern", "reasons": [GOAL_BY_AGENCY]}


def test_a_withdrawal_citing_pressure_is_a_concern(world):
    episode = consented(world).check().withdraw("felt_pressured")
    assert episode.last["status"] == "withdrawn"
    assert episode.voluntariness() == {"status": "concern", "reasons": [PRESSURED]}


def test_a_concern_found_during_therapy_counts_as_well_as_one_at_intake(world):
    episode = consented(world).check().check(stage="during_therapy", feels_free_to_stop=False, checked_at="2026-10-02T10:00:00Z")
    assert episode.voluntariness() == {"status": "concern", "reasons": [NOT_FREE]}


# ---- the most serious status decides, and names only its own reasons ---------------------------------------


def test_not_voluntary_outranks_concern_and_lists_every_reason_of_its_level(world):
    episode = consented(world, pathway="benefit_condition").check(
        told_attendance_required=True, sanction_mentioned=True, feels_free_to_stop=False,
        employment_goal_raised_by="benefits_agency",
    ).withdraw("felt_pressured")  # fmt: skip
    assert episode.voluntariness() == {"status": "not_voluntary", "reasons": [MANDATED, TOLD_REQUIRED, SANCTION]}


def test_concern_outranks_unknown_and_lists_every_reason_of_its_level(world):
    episode = Episode(world).check(stage="during_therapy", feels_free_to_stop=False, employment_goal_raised_by="benefits_agency")
    assert episode.voluntariness() == {"status": "concern", "reasons": [NOT_FREE, GOAL_BY_AGENCY]}


def test_a_corrected_check_no_longer_counts(world):
    episode = consented(world).check(sanction_mentioned=True)
    assert episode.voluntariness()["status"] == "not_voluntary"
    wrong = episode.last["voluntariness_checks"][0]["id"]
    episode.check(supersedes=wrong)
    assert episode.voluntariness() == {"status": "voluntary", "reasons": []}
    # Both checks stay on the record.
    assert [c["sanction_mentioned"] for c in episode.last["voluntariness_checks"]] == [True, False]


def test_the_status_cannot_be_typed_in(world):
    episode = consented(world)
    response = episode.client.post(
        f"/api/v1/referrals/{episode.id}/voluntariness-checks/", {**CLEAR_CHECK, "voluntariness": "voluntary"}, format="json"
    )
    assert response.status_code == 400
    assert "set by the service" in response.json()["errors"]["voluntariness"][0]
