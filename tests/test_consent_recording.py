"""Recording consent: explicit (all five acknowledgements), to treatment, never to sharing with a benefits
agency; and the status an episode moves through, with every decline counted."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from consent.models import ACKNOWLEDGEMENTS, ConsentRecord, Decline, Discharge, Referral, VoluntarinessCheck, Withdrawal
from consent.services import SHARING_NOT_PERMITTED
from tests.conftest import api_client, give_consent, make_referral
from tests.factories import ConsentTemplateFactory

RECORDS = (ConsentRecord, Withdrawal, VoluntarinessCheck, Decline, Discharge)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in RECORDS}


def consent_body(world, **changes) -> dict:
    data = {
        "template": world.template.pk,
        "method": "verbal",
        "given_at": "2026-09-14T10:05:00Z",
        "scopes": ["treatment", "data_set_submission", "contact_by_phone"],
        "acknowledgements": dict.fromkeys(ACKNOWLEDGEMENTS, True),
    }
    data.update(changes)
    return data


def post(user, referral, what, data):
    return api_client(user).post(f"/api/v1/referrals/{referral.pk}/{what}/", data, format="json")


def refused(user, referral, what, data) -> dict:
    """Post, expecting a 400 that writes nothing and leaves the status as it was; the errors by field."""
    status_before = Referral.objects.get(pk=referral.pk).status
    before = counts()
    response = post(user, referral, what, data)
    assert response.status_code == 400, response.content
    assert counts() == before
    assert Referral.objects.get(pk=referral.pk).status == status_before
    return response.json()["errors"]


def status_of(referral) -> str:
    return Referral.objects.get(pk=referral.pk).status


# ---- explicit consent -------------------------------------------------------------------------------------


def test_it_records_explicit_consent_and_the_referral_becomes_active(world):
    response = post(world.therapist, world.referral, "consents", consent_body(world))
    assert response.status_code == 201, response.json()
    payload = response.json()
    assert payload["status"] == "active"
    [consent] = payload["consents"]
    assert consent["scopes"] == ["treatment", "data_set_submission", "contact_by_phone"]
    assert consent["acknowledgements"] == dict.fromkeys(ACKNOWLEDGEMENTS, True)
    assert consent["method"] == "verbal"
    assert consent["template"]["body_sha256"] == world.template.body_sha256
    record = ConsentRecord.objects.get(pk=consent["id"])
    assert record.recorded_by == world.therapist
    assert record.referral_id == world.referral.pk


@pytest.mark.parametrize("missing", ACKNOWLEDGEMENTS)
def test_it_refuses_consent_without_each_acknowledgement_naming_it(world, missing):
    acknowledgements = dict.fromkeys(ACKNOWLEDGEMENTS, True)
    acknowledgements[missing] = False
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, acknowledgements=acknowledgements))
    assert list(errors) == ["acknowledgements"]
    [message] = errors["acknowledgements"]
    assert message.startswith(f"{missing} must be true")


@pytest.mark.parametrize("missing", ACKNOWLEDGEMENTS)
def test_it_refuses_consent_when_an_acknowledgement_is_left_out_of_the_body(world, missing):
    acknowledgements = {name: True for name in ACKNOWLEDGEMENTS if name != missing}
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, acknowledgements=acknowledgements))
    assert [m.split(" ")[0] for m in errors["acknowledgements"]] == [missing]


def test_it_lists_each_missing_acknowledgement_and_the_treatment_scope_at_once(world):
    body = consent_body(world, scopes=["contact_by_sms"], acknowledgements={"free_to_withdraw": True})
    errors = refused(world.therapist, world.referral, "consents", body)
    named = [message.split(" ")[0] for message in errors["acknowledgements"]]
    assert named == [name for name in ACKNOWLEDGEMENTS if name != "free_to_withdraw"]
    assert any("treatment scope is required" in message for message in errors["scopes"])


def test_it_refuses_consent_with_no_acknowledgements_or_scopes_at_all(world):
    body = consent_body(world)
    del body["acknowledgements"], body["scopes"]
    errors = refused(world.therapist, world.referral, "consents", body)
    assert len(errors["acknowledgements"]) == 5
    assert any("treatment" in message for message in errors["scopes"])


def test_it_refuses_consent_without_the_treatment_scope(world):
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, scopes=["data_set_submission"]))
    assert list(errors) == ["scopes"]
    assert errors["scopes"] == ["The treatment scope is required: consent to therapy is what is being recorded."]


@pytest.mark.parametrize(
    "scope",
    ["share_with_benefits_agency", "share_with_jobcentre", "share_with_dwp", "share_with_work_coach", "SHARE_WITH_JOBCENTRE"],
)
def test_it_refuses_a_scope_asking_to_share_with_a_benefits_agency(world, scope):
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, scopes=["treatment", scope]))
    assert SHARING_NOT_PERMITTED in errors["scopes"]
    assert "not permitted" in SHARING_NOT_PERMITTED


@pytest.mark.parametrize(
    "where, field",
    [("body", "share_with_jobcentre"), ("body", "disclose_to_benefits_agency"), ("body", "dwp_contact"),
     ("acknowledgements", "share_with_jobcentre"), ("acknowledgements", "benefits_agency_may_see_attendance")],
)  # fmt: skip
def test_it_refuses_any_field_asking_to_share_with_a_benefits_agency(world, where, field):
    body = consent_body(world)
    (body if where == "body" else body["acknowledgements"])[field] = True
    errors = refused(world.therapist, world.referral, "consents", body)
    messages = errors[field] if where == "body" else errors["acknowledgements"][field]
    assert messages == [SHARING_NOT_PERMITTED]


def test_it_refuses_an_unknown_scope_saying_which_are_accepted(world):
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, scopes=["treatment", "telepathy"]))
    [message] = errors["scopes"]
    assert "telepathy" in message and "contact_by_letter" in message and "share_with_gp" in message


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"given_at": "tomorrow"}, "given_at", "in the future"),
        ({"given_at": "2026-09-13T10:00:00Z"}, "given_at", "before the referral"),
        ({"given_at": "14/09/2026 10:05"}, "given_at", "format"),
        ({"method": "telepathic"}, "method", "verbal, written, digital"),
        ({"template": 999_999}, "template", "/api/v1/consent-templates/"),
        ({"template": "expired"}, "template", "not in force"),
        ({"method": None}, "method", "may not be null"),
        ({"scopes": "treatment"}, "scopes", "list"),
    ],
    ids=["future", "before_referral", "not_a_datetime", "method", "no_template", "template_not_in_force", "null", "not_a_list"],
)
def test_it_refuses_other_bad_consent_input_with_an_actionable_message(world, changes, field, words):
    if changes.get("given_at") == "tomorrow":
        changes = {"given_at": (timezone.now() + timedelta(days=1)).isoformat()}
    if changes.get("template") == "expired":
        old = ConsentTemplateFactory(code="old-text", effective_from=date(2024, 1, 1), effective_to=date(2025, 1, 1))
        changes = {"template": old.pk}
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, **changes))
    assert words in " ".join(map(str, errors[field])), errors


# ---- the status of an episode -----------------------------------------------------------------------------


def withdraw(user, referral, reason="no_longer_wanted", when="2026-10-01T09:00:00Z"):
    return post(user, referral, "withdrawals", {"withdrawn_at": when, "reason": reason})


def test_it_moves_awaiting_consent_to_active_to_withdrawn(world):
    assert status_of(world.referral) == "awaiting_consent"
    assert post(world.therapist, world.referral, "consents", consent_body(world)).json()["status"] == "active"
    response = withdraw(world.therapist, world.referral)
    assert response.status_code == 201
    assert response.json()["status"] == "withdrawn"
    assert response.json()["withdrawals"][0]["reason"] == "no_longer_wanted"


def test_it_moves_active_to_discharged(world):
    post(world.therapist, world.referral, "consents", consent_body(world))
    response = post(world.therapist, world.referral, "discharge", {"discharged_on": "2026-11-01", "reason": "completed"})
    assert response.status_code == 201
    assert response.json()["status"] == "discharged"
    assert response.json()["discharge"]["reason"] == "completed"
    assert response.json()["discharge"]["discharged_on"] == "2026-11-01"


def test_it_records_a_decline_and_counts_it_in_the_list(world):
    response = post(world.therapist, world.referral, "decline", {"declined_on": "2026-09-14"})
    assert response.status_code == 201
    assert response.json()["status"] == "declined"
    assert response.json()["decline"]["declined_on"] == "2026-09-14"
    assert Decline.objects.filter(referral=world.referral).count() == 1
    # Counted, never dropped: the referral is still listed, by status and in the whole list.
    client = api_client(world.therapist)
    declined = client.get("/api/v1/referrals/", {"status": "declined"}).json()
    assert declined["count"] == 1 and declined["results"][0]["id"] == str(world.referral.pk)
    assert str(world.referral.pk) in {row["id"] for row in client.get("/api/v1/referrals/").json()["results"]}


def test_it_may_discharge_a_referral_that_never_reached_consent(world):
    response = post(world.therapist, world.referral, "discharge", {"discharged_on": "2026-10-01", "reason": "no_contact"})
    assert response.status_code == 201
    assert response.json()["status"] == "discharged"


def test_it_accepts_consent_again_while_active(world):
    post(world.therapist, world.referral, "consents", consent_body(world))
    response = post(world.therapist, world.referral, "consents", consent_body(world, given_at="2026-09-20T10:00:00Z"))
    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert len(response.json()["consents"]) == 2


@pytest.mark.parametrize(
    "setup, what, body",
    [
        ("awaiting_consent", "withdrawals", {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "no_longer_wanted"}),
        ("declined", "consents", None),
        ("declined", "discharge", {"discharged_on": "2026-11-01", "reason": "completed"}),
        ("declined", "voluntariness-checks", "check"),
        ("withdrawn", "consents", None),
        ("withdrawn", "withdrawals", {"withdrawn_at": "2026-10-02T09:00:00Z", "reason": "other"}),
        ("withdrawn", "discharge", {"discharged_on": "2026-11-01", "reason": "completed"}),
        ("discharged", "consents", None),
        ("discharged", "withdrawals", {"withdrawn_at": "2026-11-02T09:00:00Z", "reason": "other"}),
        ("discharged", "decline", {"declined_on": "2026-11-02"}),
        ("active", "decline", {"declined_on": "2026-09-20"}),
    ],
)
def test_it_refuses_a_move_the_status_does_not_allow_saying_why(world, setup, what, body):
    referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 14))
    if setup in ("active", "withdrawn", "discharged"):
        give_consent(world.therapist, referral, world.template)
    if setup == "declined":
        assert post(world.therapist, referral, "decline", {"declined_on": "2026-09-14"}).status_code == 201
    if setup == "withdrawn":
        assert withdraw(world.therapist, referral).status_code == 201
    if setup == "discharged":
        assert (
            post(world.therapist, referral, "discharge", {"discharged_on": "2026-11-01", "reason": "completed"}).status_code
            == 201
        )
    if body is None:
        body = consent_body(world, given_at="2026-11-20T10:00:00Z")
    if body == "check":
        body = {"checked_at": "2026-09-15T10:00:00Z", "stage": "intake", "told_attendance_required": False,
                "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
                "employment_goal_raised_by": "nobody"}  # fmt: skip
    errors = refused(world.therapist, referral, what, body)
    assert f"The referral is {setup}" in errors["referral"][0] or "declined" in errors["referral"][0]


def test_it_keeps_a_withdrawal_citing_pressure_and_records_it_as_such(world):
    give_consent(world.therapist, world.referral, world.template)
    response = withdraw(world.therapist, world.referral, reason="felt_pressured")
    assert response.status_code == 201
    assert response.json()["status"] == "withdrawn"
    assert response.json()["withdrawals"][0]["reason"] == "felt_pressured"
    assert response.json()["voluntariness"]["status"] == "concern"


def test_it_refuses_a_withdrawal_before_the_consent_it_withdraws(world):
    give_consent(world.therapist, world.referral, world.template, given_on=date(2026, 9, 20))
    errors = refused(world.therapist, world.referral, "withdrawals", {"withdrawn_at": "2026-09-16T09:00:00Z", "reason": "other"})
    assert "before the consent" in errors["withdrawn_at"][0]


def test_it_corrects_a_withdrawal_with_a_new_record_that_supersedes_it(world):
    give_consent(world.therapist, world.referral, world.template)
    first = withdraw(world.therapist, world.referral, reason="no_longer_wanted").json()["withdrawals"][0]
    response = post(world.therapist, world.referral, "withdrawals",
                    {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "felt_pressured", "supersedes": first["id"]})  # fmt: skip
    assert response.status_code == 201, response.json()
    withdrawals = response.json()["withdrawals"]
    assert [w["reason"] for w in withdrawals] == ["no_longer_wanted", "felt_pressured"]
    assert withdrawals[1]["supersedes"] == first["id"]
    # The original is kept unchanged; the correction now decides the voluntariness.
    assert Withdrawal.objects.get(pk=first["id"]).reason == "no_longer_wanted"
    assert response.json()["voluntariness"]["status"] == "concern"
    # A record can be corrected once; a second correction of the same one is refused.
    again = {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "other", "supersedes": first["id"]}
    assert "already been corrected" in refused(world.therapist, world.referral, "withdrawals", again)["supersedes"][0]


@pytest.mark.parametrize("what", ["consents", "withdrawals", "voluntariness-checks"])
def test_it_refuses_a_time_later_today_that_has_not_come_yet(world, what):
    """A datetime is compared with now, not only by its day: consent at 17:00 cannot be recorded at 10:00."""
    give_consent(world.therapist, world.referral, world.template)
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    field, body = {
        "consents": ("given_at", consent_body(world, given_at=later)),
        "withdrawals": ("withdrawn_at", {"withdrawn_at": later, "reason": "other"}),
        "voluntariness-checks": ("checked_at", {"checked_at": later, "stage": "during_therapy", "told_attendance_required": False,
                                                "sanction_mentioned": False, "feels_free_to_stop": True,
                                                "goals_set_by_client": True, "employment_goal_raised_by": "nobody"}),
    }[what]  # fmt: skip
    errors = refused(world.therapist, world.referral, what, body)
    assert "in the future; give a time on or before now" in errors[field][0]


def test_it_accepts_a_time_a_moment_ago(world):
    response = post(world.therapist, world.referral, "consents", consent_body(world, given_at=timezone.now().isoformat()))
    assert response.status_code == 201, response.json()


def test_a_consent_record_can_be_corrected_after_withdrawal_without_reviving_the_referral(world):
    first = post(world.therapist, world.referral, "consents", consent_body(world, method="written")).json()["consents"][0]
    assert withdraw(world.therapist, world.referral).status_code == 201
    response = post(world.therapist, world.referral, "consents", consent_body(world, method="verbal", supersedes=first["id"]))
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "withdrawn"
    assert [(c["method"], c["supersedes"]) for c in response.json()["consents"]] == [("written", None), ("verbal", first["id"])]
    assert ConsentRecord.objects.get(pk=first["id"]).method == "written"
    # The exports now show the corrected record, still ended by the withdrawal.
    document = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/fhir-consent/").json()
    assert document["identifier"][0]["value"] == str(response.json()["consents"][1]["id"])
    assert document["status"] == "inactive"


def test_a_correction_must_point_at_a_consent_of_this_referral(world):
    other = make_referral(world.therapist, world.site)
    theirs = give_consent(world.therapist, other, world.template)
    post(world.therapist, world.referral, "consents", consent_body(world))
    errors = refused(world.therapist, world.referral, "consents", consent_body(world, supersedes=theirs.pk))
    assert f"No consent record {theirs.pk} on this referral" in errors["supersedes"][0]
