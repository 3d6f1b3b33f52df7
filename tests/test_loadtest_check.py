"""The load test's check (bench/loadtest_check.py) passes on what really happened and catches what did not.

The answers are made here through the API, recorded as bench/locustfile.py records them (the server's request id
from X-Request-ID), and the check is held to the same database. So a change to what the API logs, that the
check would misread after a real load test, shows here first.
"""

import time

import pytest

from bench.loadtest_check import Check, check_events, check_intakes
from tests.conftest import ACKNOWLEDGED, api_client

RUN = "test-run"


def _answer(kind, user, method, path, response, **recorded):
    return {"kind": kind, "user": user.username, "method": method, "path": path, "status": response.status_code,
            "request_id": response["X-Request-ID"], "retry_after": response.get("Retry-After"), "at": time.time(),
            **recorded}  # fmt: skip


@pytest.fixture
def recorded(world):
    """A small load test's record: a list, a read, an intake with consent, a work coach's refused attempts."""
    header = {"run": RUN, "started": time.time()}
    therapist, coach = api_client(world.therapist), api_client(world.work_coach)
    answers = []

    listed = therapist.get("/api/v1/referrals/")
    answers.append(_answer("therapist_list", world.therapist, "GET", "/api/v1/referrals/", listed,
                           rows=[row["id"] for row in listed.json()["results"]]))  # fmt: skip
    path = f"/api/v1/referrals/{world.referral.pk}/"
    answers.append(_answer("detail_read", world.therapist, "GET", path, therapist.get(path), referral=str(world.referral.pk)))
    reference = f"LOAD-{RUN}-1"
    intake = therapist.post("/api/v1/referrals/", {
        "client": {"local_reference": reference}, "site": world.site.pk, "referred_on": "2026-09-14",
        "source_of_referral": "B1", "how_heard": "gp", "pathway": "self_referral"}, format="json")  # fmt: skip
    referral = intake.json()["id"]
    answers.append(_answer("intake", world.therapist, "POST", "/api/v1/referrals/", intake, local_reference=reference,
                           referral=referral))  # fmt: skip
    path = f"/api/v1/referrals/{referral}/consents/"
    consent = therapist.post(path, {"template": world.template.pk, "method": "verbal", "given_at": "2026-09-14T10:00:00Z",
                                    "scopes": ["treatment"], "acknowledgements": dict(ACKNOWLEDGED)}, format="json")  # fmt: skip
    answers.append(_answer("consent", world.therapist, "POST", path, consent, referral=referral,
                           records=[record["id"] for record in consent.json()["consents"]]))  # fmt: skip
    path = f"/api/v1/referrals/{world.referral.pk}/"
    answers.append(_answer("work_coach_detail", world.work_coach, "GET", path, coach.get(path)))
    answers.append(_answer("work_coach_list", world.work_coach, "GET", "/api/v1/referrals/", coach.get("/api/v1/referrals/")))
    header["stopped"] = time.time()
    return header, answers


def _failures(header, answers, **options):
    check = Check()
    check_events(check, header, answers, allow_unavailable=options.get("allow_unavailable", False))
    check_intakes(check, header, answers)
    return check.failures


def test_it_passes_what_really_happened(recorded):
    header, answers = recorded
    assert [a["status"] for a in answers] == [200, 200, 201, 201, 404, 403]

    assert _failures(header, answers) == []


def test_it_catches_a_row_served_without_its_list_event(recorded):
    header, answers = recorded
    answers[0]["rows"] = [*answers[0]["rows"], "00000000-0000-0000-0000-000000000000"]

    assert any("rows without one" in failure for failure in _failures(header, answers))


def test_it_catches_an_answer_the_log_does_not_know(recorded):
    header, answers = recorded
    answers[1]["request_id"] = "not-the-servers-id"

    failures = _failures(header, answers)

    assert any("0 allowed events, expected 1" in failure for failure in failures)
    assert any("belong to no request it made" in failure for failure in failures)


def test_it_catches_an_intake_that_failed_but_left_its_client(recorded):
    header, answers = recorded
    answers[2].update(status=503, retry_after="5")

    failures = _failures(header, answers, allow_unavailable=True)

    assert any("a client was left by an intake that was not answered 201" in failure for failure in failures)
    assert any("an unexpected answer left 1 events" in failure for failure in failures)


def test_it_catches_a_refusal_answered_as_something_else(recorded):
    header, answers = recorded
    answers[4]["status"] = 200

    assert any("not the answer this journey expects" in failure for failure in _failures(header, answers))
