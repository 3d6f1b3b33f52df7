"""Bulk reads are bulk reads: every distinct client exposed by a list, an export, a receipt or a FHIR document
counts towards the unusual-volume alert, as detail reads do; one alert per request, not one per row."""

from tests.conftest import api_client, give_consent, make_referral


def _volume_alerts(world):
    alerts = api_client(world.dpo).get("/api/v1/access-events/alerts/").json()["results"]
    return [a for a in alerts if "unusual_volume" in a["alert_reasons"]]


def test_a_list_of_more_clients_than_the_limit_raises_one_alert(world, settings):
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 3
    for _ in range(4):
        make_referral(world.therapist, world.site)

    response = api_client(world.therapist).get("/api/v1/referrals/")

    assert response.status_code == 200 and response.json()["count"] == 5
    (alert,) = _volume_alerts(world)
    assert alert["action"] == "list" and alert["actor"]["name"] == "therapist"


def test_a_list_within_the_limit_raises_none(world, settings):
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 5
    for _ in range(4):
        make_referral(world.therapist, world.site)
    assert api_client(world.therapist).get("/api/v1/referrals/").json()["count"] == 5
    assert _volume_alerts(world) == []


def test_lists_exports_and_reads_add_up(world, settings):
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 3
    referrals = [world.referral] + [make_referral(world.therapist, world.site) for _ in range(3)]
    for referral in referrals:
        give_consent(world.therapist, referral, world.template)
    client = api_client(world.therapist)

    assert client.get(f"/api/v1/referrals/{referrals[0].pk}/fhir-consent/").status_code == 200
    assert client.get(f"/api/v1/referrals/{referrals[1].pk}/consent-receipt/").status_code == 200
    assert client.get(f"/api/v1/referrals/{referrals[2].pk}/").status_code == 200
    assert _volume_alerts(world) == []

    assert client.get(f"/api/v1/referrals/{referrals[3].pk}/consent-receipt/").status_code == 200

    (alert,) = _volume_alerts(world)
    assert alert["action"] == "export" and alert["referral"] == str(referrals[3].pk)
