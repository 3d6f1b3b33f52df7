"""Bulk reads are bulk reads: every distinct client exposed by a list, an export, a receipt or a FHIR document
counts towards the unusual-volume alert, as detail reads do; one alert per request, not one per row."""

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from consent.access.log import AccessContext, EventDraft, record_access
from consent.access.models import Action, Outcome
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


def test_a_list_costs_the_same_queries_whether_or_not_it_alone_passes_the_limit(world, settings):
    for _ in range(4):
        make_referral(world.therapist, world.site)
    client = api_client(world.therapist)

    def queries_of_the_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/referrals/").json()["count"] == 5
        return len(captured.captured_queries)

    # Within the limit the clients its user saw in the hour are counted; past it on its own the page needs no
    # count. Either way the count rides in the statement that locks the chain head: the same queries.
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 10
    counted = queries_of_the_list()
    assert _volume_alerts(world) == []
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 3
    assert queries_of_the_list() == counted
    assert len(_volume_alerts(world)) == 1


def test_earlier_clients_in_the_hour_count_towards_a_page_within_the_limit(world, settings):
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 5
    older = [world.referral, make_referral(world.therapist, world.site), make_referral(world.therapist, world.site)]
    client = api_client(world.therapist)
    for referral in older:
        assert client.get(f"/api/v1/referrals/{referral.pk}/").status_code == 200
    newer = {str(make_referral(world.therapist, world.site).pk) for _ in range(3)}
    assert _volume_alerts(world) == []

    # Three clients on the page, within the limit alone; with the three read earlier in the hour, six.
    page = client.get("/api/v1/referrals/?page_size=3").json()["results"]
    assert {row["id"] for row in page} == newer
    (alert,) = _volume_alerts(world)
    assert alert["action"] == "list"


def test_a_read_by_nobody_signed_in_counts_against_no_one(world, settings):
    # A command or the system: no user to count distinct clients for, however many it exposes.
    settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = 1
    referrals = [world.referral, make_referral(world.therapist, world.site), make_referral(world.therapist, world.site)]
    drafts = [
        EventDraft(chain=r.provider, action=Action.READ, outcome=Outcome.ALLOWED, status=200, object_type="referral",
                   object_id=str(r.pk), client_pseudonym=r.client_id, referral_id=r.pk)
        for r in referrals
    ]  # fmt: skip
    with transaction.atomic():
        events = record_access(AccessContext(user=None, request_id="system"), drafts)
    assert [e.alert_reasons for e in events] == ["", "", ""]
