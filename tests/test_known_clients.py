"""Known clients within a provider (acceptance 3).

A colleague of the same provider who records a referral with another therapist's client's local reference
(references are sequential, so guessable) gets back nothing they did not type: no NHS number, no year of
birth, no history of the client's other referral; the same answer shape whether the NHS number they gave is
the one held or not; and the DPO is alerted. The referral is recorded for the client the reference names, with
what was typed kept beside it for the DPO to reconcile.
"""

import pytest

from consent.access.models import AccessEvent
from consent.models import Referral
from tests.conftest import api_client, make_referral

HELD_NHS_NUMBER, HELD_YEAR = "9434765919", 1979  # world.referral's client, KTT-000123
OTHER_NHS_NUMBER = "4010232137"


def _intake(user, **client):
    body = {"client": {"local_reference": "KTT-000123", **client}, "site": 0, "referred_on": "2026-09-20",
            "source_of_referral": "B1", "how_heard": "leaflet_or_poster", "pathway": "self_referral"}  # fmt: skip
    return body


def _record(world, user, **client):
    body = _intake(user, **client)
    body["site"] = world.site.pk
    response = api_client(user).post("/api/v1/referrals/", body, format="json")
    return response


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _known_client_alerts(world):
    alerts = api_client(world.dpo).get("/api/v1/access-events/alerts/").json()["results"]
    return [a for a in alerts if "known_client" in a["alert_reasons"]]


CASES = {
    "the right NHS number": {"nhs_number": HELD_NHS_NUMBER},
    "another NHS number": {"nhs_number": OTHER_NHS_NUMBER},
    "no NHS number": {},
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_colleague_gets_back_only_what_they_typed_and_the_dpo_is_alerted(world, case):
    response = _record(world, world.unassigned_therapist, **CASES[case])

    assert response.status_code == 201, response.content
    text = response.content.decode()
    typed = CASES[case].get("nhs_number", "")
    if typed != HELD_NHS_NUMBER:
        assert HELD_NHS_NUMBER not in text
    assert str(HELD_YEAR) not in text
    client = response.json()["client"]
    assert client == {"id": str(world.referral.client_id), "local_reference": "KTT-000123", "nhs_number": typed,
                      "year_of_birth": None}  # fmt: skip
    # Recorded for the client the reference names, and the DPO hears of it.
    created = Referral.objects.get(pk=response.json()["id"])
    assert created.client_id == world.referral.client_id and created.client_known_at_intake
    (alert,) = _known_client_alerts(world)
    assert alert["actor"]["name"] == "unassigned" and alert["client_pseudonym"] == str(world.referral.client_id)


def test_the_answer_has_the_same_shape_whether_the_nhs_number_matches_or_not(world):
    right = _record(world, world.unassigned_therapist, nhs_number=HELD_NHS_NUMBER, year_of_birth=1990)
    wrong = _record(world, world.other_team_lead, nhs_number=OTHER_NHS_NUMBER, year_of_birth=1990)

    assert right.status_code == wrong.status_code == 201
    assert _shape(right.json()) == _shape(wrong.json())
    assert right.json()["client"]["year_of_birth"] == wrong.json()["client"]["year_of_birth"] == 1990  # as typed
    assert HELD_NHS_NUMBER not in wrong.content.decode()
    assert len(_known_client_alerts(world)) == 2


def test_and_the_same_as_for_a_client_nobody_held_before(world):
    known = _record(world, world.unassigned_therapist, nhs_number=OTHER_NHS_NUMBER)
    body = _intake(world.unassigned_therapist, nhs_number=OTHER_NHS_NUMBER)
    body["client"]["local_reference"], body["site"] = "KTT-099999", world.site.pk
    new = api_client(world.unassigned_therapist).post("/api/v1/referrals/", body, format="json")

    assert new.status_code == known.status_code == 201
    assert _shape(new.json()) == _shape(known.json())
    assert {k: v for k, v in new.json()["client"].items() if k not in ("id", "local_reference")} == {
        k: v for k, v in known.json()["client"].items() if k not in ("id", "local_reference")
    }


def test_reading_the_new_referral_later_gives_back_nothing_more(world):
    created = _record(world, world.unassigned_therapist).json()
    client = api_client(world.unassigned_therapist)

    detail = client.get(f"/api/v1/referrals/{created['id']}/")
    listed = client.get("/api/v1/referrals/")
    history = client.get(f"/api/v1/referrals/{created['id']}/access-history/")

    for response in (detail, listed, history):
        assert response.status_code == 200
        assert HELD_NHS_NUMBER not in response.content.decode()
        assert str(HELD_YEAR) not in response.content.decode()
    # The new referral's access history is its own: not who opened the client's other referral, nor the alert.
    events = history.json()["results"]
    assert events and {e["referral"] for e in events} == {created["id"]}
    assert all("known_client" not in e["alert_reasons"] for e in events)


def test_a_second_intake_by_the_same_colleague_gives_nothing_back_either(world):
    _record(world, world.unassigned_therapist)
    again = _record(world, world.unassigned_therapist)

    assert again.status_code == 201
    assert HELD_NHS_NUMBER not in again.content.decode() and str(HELD_YEAR) not in again.content.decode()
    assert len(_known_client_alerts(world)) == 2


def test_whoever_already_sees_the_client_is_still_told_of_a_mismatch(world):
    # The assigned therapist reads the held number anyway: telling them it differs reveals nothing.
    response = _record(world, world.therapist, nhs_number=OTHER_NHS_NUMBER)
    assert response.status_code == 400
    assert "different NHS number" in str(response.json()["errors"])
    same = _record(world, world.therapist, nhs_number=HELD_NHS_NUMBER)
    assert same.status_code == 201 and same.json()["client"]["nhs_number"] == HELD_NHS_NUMBER
    assert not _known_client_alerts(world)


def test_the_dpos_subject_access_export_shows_what_was_typed_beside_what_is_held(world):
    created = _record(world, world.unassigned_therapist, nhs_number=OTHER_NHS_NUMBER).json()

    export = api_client(world.dpo).get(f"/api/v1/referrals/{world.referral.pk}/subject-access-export/").json()

    assert export["client"]["nhs_number"] == HELD_NHS_NUMBER
    (flagged,) = [r for r in export["referrals"] if r["id"] == created["id"]]
    assert flagged["recorded_for_a_client_already_held"] is True
    assert flagged["identifiers_given_at_intake"] == {"nhs_number": OTHER_NHS_NUMBER, "year_of_birth": None}


def test_across_providers_a_local_reference_names_a_different_client(world):
    response = _record(world, world.other_provider_therapist, nhs_number=OTHER_NHS_NUMBER)
    # Medway's therapist cannot use Kent's site; with Medway's own site the reference is Medway's own client.
    assert response.status_code == 400
    medway = make_referral(world.other_provider_therapist, world.medway_site, local_reference="KTT-000123")
    assert medway.client_id != world.referral.client_id
    assert not AccessEvent.objects.filter(alert_reasons__contains="known_client").exists()
