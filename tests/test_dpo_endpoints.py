"""The DPO's access-log endpoints: their own organisation only, filters, CSV, verify, and fixed query counts."""

import csv
import io

import pytest

from consent.access.models import AccessEvent, Action, Outcome
from tests.conftest import api_client, make_referral

LOG = "/api/v1/access-events/"


def test_it_shows_the_dpo_their_own_organisations_events_newest_first(world):
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")

    response = api_client(world.dpo).get(LOG)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == AccessEvent.objects.filter(chain=world.kent).count()
    assert {event["chain"] for event in body["results"]} == {world.kent.pk}
    newest = body["results"][0]
    assert newest["action"] == Action.READ
    assert newest["actor"] == {"id": world.therapist.pk, "name": "therapist", "organisation_id": world.kent.pk,
                               "organisation_kind": "therapy_provider"}  # fmt: skip
    assert newest["client_pseudonym"] == str(world.referral.client_id)
    assert [e["seq"] for e in body["results"]] == sorted((e["seq"] for e in body["results"]), reverse=True)


def test_it_never_shows_another_organisations_events(world):
    api_client(world.other_provider_therapist).get(f"/api/v1/referrals/{world.medway_referral.pk}/")

    kent = api_client(world.dpo).get(LOG).json()
    medway = api_client(world.other_provider_dpo).get(LOG).json()

    assert str(world.medway_referral.pk) not in {e["referral"] for e in kent["results"]}
    assert str(world.referral.pk) not in {e["referral"] for e in medway["results"]}
    assert {e["chain"] for e in medway["results"]} == {world.medway.pk}
    other_event = AccessEvent.objects.filter(chain=world.medway).first()
    assert api_client(world.dpo).get(f"{LOG}{other_event.pk}/").status_code == 404


@pytest.mark.parametrize("role", ["therapist", "lead", "reviewer", "admin", "work_coach"])
def test_it_validates_that_only_a_dpo_reads_the_log(world, role):
    for path in (LOG, f"{LOG}alerts/", f"{LOG}verify/", f"{LOG}?format=csv", f"{LOG}?format=fhir"):
        response = api_client(world.user(role)).get(path)
        assert response.status_code == 403, path
        assert "results" not in response.json()
    assert api_client().get(LOG).status_code in (401, 403)


def test_a_work_coach_asking_for_the_log_is_itself_an_alert(world):
    api_client(world.work_coach).get(LOG)

    event = AccessEvent.objects.filter(actor_id=world.work_coach.pk).latest("occurred_at")
    assert event.outcome == Outcome.DENIED
    assert "benefits_agency" in event.alert_reasons


def test_it_filters_by_actor_referral_action_outcome_kind_and_time(world):
    other = make_referral(world.therapist, world.site)
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    api_client(world.unassigned_therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    api_client(world.work_coach).get(f"/api/v1/referrals/{other.pk}/")
    dpo = api_client(world.dpo)

    def results(query):
        response = dpo.get(f"{LOG}?{query}")
        assert response.status_code == 200, response.json()
        return response.json()["results"]

    by_actor = results(f"actor={world.unassigned_therapist.pk}")
    assert by_actor and {e["actor"]["name"] for e in by_actor} == {"unassigned"}
    assert {e["actor"]["name"] for e in results("actor=unassigned")} == {"unassigned"}
    assert {e["referral"] for e in results(f"referral={other.pk}")} == {str(other.pk)}
    assert {e["action"] for e in results("action=read")} == {"read"}
    denied = results("outcome=denied")
    assert {e["actor"]["name"] for e in denied} == {"unassigned", "workcoach"}
    agency = results("organisation_kind=benefits_agency")
    assert [e["actor"]["name"] for e in agency] == ["workcoach"]
    assert results("occurred_after=2100-01-01") == []
    assert len(results("occurred_before=2100-01-01T00:00:00Z")) == AccessEvent.objects.filter(chain=world.kent).count()


@pytest.mark.parametrize(
    ("query", "field"),
    [("action=peek", "action"), ("outcome=maybe", "outcome"), ("referral=KTT-000123", "referral"),
     ("occurred_after=yesterday", "occurred_after"), ("organisation_kind=bank", "organisation_kind"),
     ("occurred_after=0001-01-01T00:00:00%2B14:00", "occurred_after"),
     ("occurred_before=9999-12-31T23:59:59-14:00", "occurred_before"), ("occurred_before=2026-02-30", "occurred_before")],
)  # fmt: skip
def test_a_bad_filter_is_a_400_that_names_the_field_and_what_it_accepts(world, query, field):
    for fmt in ("", "&format=csv", "&format=fhir"):
        response = api_client(world.dpo).get(f"{LOG}?{query}{fmt}")
        assert response.status_code == 400
        body = response.json()
        assert field in body["errors"]
        assert body["errors"][field][0]


def test_the_csv_export_has_every_event_of_the_organisation_and_is_logged(world):
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    before = AccessEvent.objects.filter(chain=world.kent).count()

    response = api_client(world.dpo).get(f"{LOG}?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    # The export's own event is written before the rows are read, so it is in the file too.
    assert len(rows) == before + 1
    assert [int(r["seq"]) for r in rows] == list(range(1, before + 2))
    assert rows[-1]["action"] == "export" and rows[-1]["actor_name"] == "dpo"
    assert {r["chain"] for r in rows} == {str(world.kent.pk)}


def test_the_csv_export_applies_the_filters(world):
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")

    response = api_client(world.dpo).get(f"{LOG}?format=csv&outcome=denied")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows and {r["outcome"] for r in rows} == {"denied"}


def test_verify_answers_verified_with_the_count_and_the_head(world):
    response = api_client(world.dpo).get(f"{LOG}verify/")

    assert response.status_code == 200
    body = response.json()
    assert body["verified"] is True
    assert body["first_mismatch"] is None
    assert body["events_checked"] == AccessEvent.objects.filter(chain=world.kent).count()
    head = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").first()
    assert body["heads"] == {str(world.kent.pk): {"seq": head.seq, "head_hash": head.hash}}


def test_verify_refuses_an_against_that_is_not_a_head_hash(world):
    response = api_client(world.dpo).get(f"{LOG}verify/?against=not-a-hash")

    assert response.status_code == 400
    assert "64" in response.json()["errors"]["against"][0]


def test_events_have_no_put_patch_or_delete(world):
    event = AccessEvent.objects.filter(chain=world.kent).first()
    client = api_client(world.dpo)
    assert client.get(f"{LOG}{event.pk}/").status_code == 200
    for method in ("put", "patch", "delete"):
        assert getattr(client, method)(f"{LOG}{event.pk}/", {}).status_code == 405
        assert getattr(client, method)(LOG, {}).status_code == 405


def _queries_for(client, path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("path", [LOG, f"{LOG}?format=fhir", f"{LOG}alerts/", f"{LOG}?outcome=denied&page_size=5"])
def test_lists_cost_a_fixed_number_of_queries_however_long_the_log(world, path, django_assert_max_num_queries):
    client = api_client(world.dpo)
    client.get("/api/v1/me/")
    # One alert to start with: an empty page costs one query less (no rows to fetch after the count).
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    few = _queries_for(client, path)

    for _ in range(20):
        api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
        api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    many = _queries_for(client, path)

    assert few == many
    with django_assert_max_num_queries(few):
        assert client.get(path).status_code == 200


def test_a_referrals_access_history_costs_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    path = f"/api/v1/referrals/{world.referral.pk}/access-history/"
    client = api_client(world.therapist)
    client.get("/api/v1/me/")
    few = _queries_for(client, path)

    for _ in range(20):
        api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
        api_client(world.lead).get(f"/api/v1/referrals/{world.referral.pk}/")

    with django_assert_max_num_queries(few):
        response = client.get(path)
    assert response.json()["count"] > 40


@pytest.mark.parametrize("actor", ["99999999999999999999999999", "%C2%B2", "nobody-by-this-name"])
def test_an_actor_that_matches_nobody_is_an_empty_page(world, actor):
    response = api_client(world.dpo).get(f"{LOG}?actor={actor}")

    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_ids_past_any_row_are_not_found(world):
    client = api_client(world.dpo)
    assert client.get(f"{LOG}99999999999999999999999/").status_code == 404
    response = client.post(f"{LOG}alerts/99999999999999999999999/disposition/", {"disposition": "no_concern", "note": "x"})
    assert response.status_code == 404


def test_filtered_by_referral_it_leaves_out_the_clients_other_referrals(world):
    # Read through the client's events (the log keeps no index by referral), narrowed to the referral asked for.
    again = make_referral(world.therapist, world.site, local_reference="KTT-000123", nhs_number="9434765919",
                          year_of_birth=1979)  # fmt: skip
    assert again.client_id == world.referral.client_id
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    api_client(world.therapist).get(f"/api/v1/referrals/{again.pk}/")
    dpo = api_client(world.dpo)

    for referral in (world.referral, again):
        events = dpo.get(f"{LOG}?referral={referral.pk}&page_size=200").json()["results"]
        assert events and {e["referral"] for e in events} == {str(referral.pk)}
        assert len(events) == AccessEvent.objects.filter(chain=world.kent, referral_id=referral.pk).count()
    unknown = dpo.get(f"{LOG}?referral=00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 200 and unknown.json()["results"] == []
