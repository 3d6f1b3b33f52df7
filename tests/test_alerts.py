"""The DPO's alert queue: what raises an alert, who sees it, dispositions, and a referral's access history."""

import pytest
from django.db import DatabaseError, connection, transaction

from consent.access.models import AccessEvent, AlertDisposition
from tests.conftest import api_client, make_referral

ALERTS = "/api/v1/access-events/alerts/"


def _alerts(user, query=""):
    """The queue, less the standing world's own setup: its accounts and template were made from a shell (actor
    "system"), and each such authorisation change is an alert of its own (tests/test_authorisation_changes.py)."""
    response = api_client(user).get(f"{ALERTS}{query}")
    assert response.status_code == 200
    return [alert for alert in response.json()["results"] if alert["actor"]["name"] != "system"]


def _dispose(user, alert_id, disposition="no_concern", note="Reviewed with the team leader."):
    return api_client(user).post(f"{ALERTS}{alert_id}/disposition/", {"disposition": disposition, "note": note}, format="json")


def test_a_work_coachs_attempt_shows_in_the_dpos_alerts_and_not_another_providers(world):
    response = api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    assert response.status_code == 404

    kent = _alerts(world.dpo)
    attempt = next(a for a in kent if a["actor"]["name"] == "workcoach")
    assert attempt["referral"] == str(world.referral.pk)
    assert attempt["outcome"] == "denied"
    assert attempt["actor"]["organisation_kind"] == "benefits_agency"
    assert set(attempt["alert_reasons"]) == {"denied", "benefits_agency"}
    assert attempt["open"] is True and attempt["latest_disposition"] is None

    medway = _alerts(world.other_provider_dpo)
    assert all(a["referral"] != str(world.referral.pk) for a in medway)
    assert all(a["chain"] == world.medway.pk for a in medway)
    # Nor can the other provider's DPO decide on it: it is not in their log at all.
    assert _dispose(world.other_provider_dpo, attempt["id"]).status_code == 404
    assert not AlertDisposition.objects.exists()


def test_a_work_coachs_list_attempt_is_an_alert_too(world):
    assert api_client(world.work_coach).get("/api/v1/referrals/").status_code == 403

    attempt = [a for a in _alerts(world.dpo) if a["actor"]["name"] == "workcoach"]
    assert len(attempt) == 1
    assert attempt[0]["action"] == "list"
    assert "benefits_agency" in attempt[0]["alert_reasons"]


def test_a_refused_therapist_raises_an_alert_and_an_allowed_read_does_not(world):
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    api_client(world.unassigned_therapist).get(f"/api/v1/referrals/{world.referral.pk}/")

    alerts = _alerts(world.dpo)
    assert [(a["actor"]["name"], a["alert_reasons"]) for a in alerts] == [("unassigned", ["denied"])]


def test_break_glass_raises_an_alert_with_its_reason(world):
    response = api_client(world.other_team_lead).post(
        f"/api/v1/referrals/{world.referral.pk}/break-glass/",
        {"reason": "Safeguarding concern raised at reception"},
        format="json",
    )
    assert response.status_code == 200

    (alert,) = _alerts(world.dpo)
    assert alert["action"] == "break_glass"
    assert set(alert["alert_reasons"]) == {"break_glass", "outside_assignment"}
    assert alert["purpose"] == "Safeguarding concern raised at reception"


def test_more_distinct_clients_in_an_hour_than_the_limit_raises_an_unusual_volume_alert(world, settings):
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 2
    referrals = [world.referral, make_referral(world.therapist, world.site), make_referral(world.therapist, world.site)]
    client = api_client(world.therapist)
    for referral in referrals[:2]:
        assert client.get(f"/api/v1/referrals/{referral.pk}/").status_code == 200
    assert _alerts(world.dpo) == []

    assert client.get(f"/api/v1/referrals/{referrals[2].pk}/").status_code == 200

    (alert,) = _alerts(world.dpo)
    assert alert["alert_reasons"] == ["unusual_volume"]
    assert alert["referral"] == str(referrals[2].pk)


def test_open_alerts_come_first_and_a_disposition_closes_one(world):
    older = make_referral(world.therapist, world.site)
    api_client(world.unassigned_therapist).get(f"/api/v1/referrals/{older.pk}/")
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    first, second = _alerts(world.dpo)
    assert first["actor"]["name"] == "workcoach"  # newest first while both are open

    response = _dispose(world.dpo, first["id"], "no_concern", "The attempt was refused; spoke to the jobcentre manager.")

    assert response.status_code == 201
    assert response.json()["open"] is False
    assert response.json()["decided_by"] == "dpo"
    queue = _alerts(world.dpo)
    assert [a["id"] for a in queue] == [second["id"], first["id"]]
    assert queue[1]["latest_disposition"]["disposition"] == "no_concern"
    assert [a["id"] for a in _alerts(world.dpo, "?state=open")] == [second["id"]]
    assert [a["id"] for a in _alerts(world.dpo, "?state=closed")] == [first["id"]]


def test_each_disposition_is_a_new_record_and_the_latest_decides(world):
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    (alert,) = _alerts(world.dpo)

    assert _dispose(world.dpo, alert["id"], "no_concern").status_code == 201
    assert (
        _dispose(world.dpo, alert["id"], "investigating", "Reopened: a second attempt from the same office.").status_code == 201
    )

    assert AlertDisposition.objects.filter(event_id=alert["id"]).count() == 2
    (reopened,) = _alerts(world.dpo, "?state=open")
    assert reopened["latest_disposition"]["disposition"] == "investigating"
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE access_alertdisposition SET disposition = 'no_concern'")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"disposition": "ignore", "note": "x"}, "disposition"), ({"disposition": "no_concern"}, "note"),
     ({"disposition": "no_concern", "note": ""}, "note"), ({"note": "x"}, "disposition"),
     ({"disposition": "no_concern", "note": "x", "decided_by": 1}, "decided_by")],
)  # fmt: skip
def test_a_bad_disposition_is_a_400_naming_the_field(world, body, field):
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    (alert,) = _alerts(world.dpo)

    response = api_client(world.dpo).post(f"{ALERTS}{alert['id']}/disposition/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not AlertDisposition.objects.exists()


def test_an_event_that_is_not_an_alert_takes_no_disposition(world):
    allowed = AccessEvent.objects.filter(chain=world.kent, alert_reasons="").first()

    assert _dispose(world.dpo, allowed.pk).status_code == 404
    assert _dispose(world.dpo, 2_147_480_000).status_code == 404


@pytest.mark.parametrize("role", ["therapist", "lead", "work_coach", "reviewer", "admin"])
def test_it_validates_that_only_a_dpo_decides_on_alerts(world, role):
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    alert = AccessEvent.objects.filter(chain=world.kent).exclude(alert_reasons="").first()

    assert _dispose(world.user(role), alert.pk).status_code in (403, 404)
    assert not AlertDisposition.objects.exists()


# ---- a referral's access history ---------------------------------------------------------------------------


def _history(user, referral):
    return api_client(user).get(f"/api/v1/referrals/{referral.pk}/access-history/")


def test_the_assigned_therapist_and_the_dpo_read_a_referrals_access_history(world):
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")

    for user in (world.therapist, world.lead, world.dpo):
        response = _history(user, world.referral)
        assert response.status_code == 200
        events = response.json()["results"]
        assert {e["client_pseudonym"] for e in events} == {str(world.referral.client_id)}
        assert "workcoach" in {e["actor"]["name"] for e in events}
        # The reading of the history is itself in the history, newest first.
        assert events[0]["actor"]["name"] == user.get_username()


@pytest.mark.parametrize("role", ["unassigned_therapist", "other_team_lead", "other_provider_therapist", "other_provider_dpo",
                                  "work_coach", "reviewer", "admin"])  # fmt: skip
def test_nobody_else_reads_a_referrals_access_history_and_the_attempt_is_logged(world, role):
    user = world.user(role)
    denied = AccessEvent.objects.filter(actor_id=user.pk, outcome="denied")
    before = denied.filter(referral_id=world.referral.pk).count()

    response = _history(user, world.referral)

    assert response.status_code == 404
    assert "results" not in response.json()
    # Once on the referral's own chain; on the actor's other chains (if any), a trace that names no client.
    assert denied.filter(referral_id=world.referral.pk).count() == before + 1
    assert not denied.exclude(chain=world.kent).exclude(client_pseudonym=None).exists()


def test_a_therapist_reads_the_history_only_of_referrals_they_may_see(world):
    mine = make_referral(world.unassigned_therapist, world.site)

    assert _history(world.unassigned_therapist, mine).status_code == 200
    assert _history(world.unassigned_therapist, world.referral).status_code == 404
    assert _history(world.therapist, world.medway_referral).status_code == 404


def test_a_referrals_history_leaves_out_its_clients_other_referrals(world):
    # The same client referred again: the history is read through the client's events, narrowed to this referral.
    again = make_referral(world.therapist, world.site, local_reference="KTT-000123", nhs_number="9434765919", year_of_birth=1979)
    assert again.client_id == world.referral.client_id
    api_client(world.therapist).get(f"/api/v1/referrals/{again.pk}/")

    for referral in (world.referral, again):
        events = _history(world.therapist, referral).json()["results"]
        assert events and {e["referral"] for e in events} == {str(referral.pk)}
        assert len(events) == AccessEvent.objects.filter(referral_id=referral.pk).count()
