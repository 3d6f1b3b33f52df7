"""The subject-access export: everything held about the client, with its access history, for the provider's DPO."""

import pytest

from consent.access.models import AccessEvent
from tests.conftest import api_client, give_consent, intake_check, make_referral


def _export(user, referral):
    return api_client(user).get(f"/api/v1/referrals/{referral.pk}/subject-access-export/")


def test_it_gives_the_dpo_everything_held_about_the_client_with_its_access_history(world):
    give_consent(world.therapist, world.referral, world.template)
    intake_check(world.therapist, world.referral)
    # The same client came back later: a second referral, found by their local reference.
    second = make_referral(
        world.therapist, world.site, local_reference="KTT-000123", referred_on=world.referral.referred_on.replace(month=10)
    )
    assert second.client_id == world.referral.client_id
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")

    response = _export(world.dpo, world.referral)

    assert response.status_code == 200
    body = response.json()
    assert body["client"]["pseudonym"] == str(world.referral.client_id)
    assert body["client"]["local_reference"] == "KTT-000123"
    assert body["client"]["nhs_number"] == "9434765919"
    assert body["client"]["year_of_birth"] == 1979
    assert body["controller"] == {"id": world.kent.pk, "name": "Kent talking therapies"}
    assert [r["id"] for r in body["referrals"]] == [str(world.referral.pk), str(second.pk)]
    first = body["referrals"][0]
    assert len(first["consents"]) == 1 and first["consents"][0]["acknowledgements"]["nothing_shared_with_jobcentre"] is True
    assert first["consents"][0]["template"]["body_sha256"] == world.template.body_sha256
    assert len(first["voluntariness_checks"]) == 1
    assert first["voluntariness"]["status"] == "voluntary"
    history = body["access_history"]
    on_chain = AccessEvent.objects.filter(chain=world.kent, client_pseudonym=world.referral.client_id)
    assert len(history) == on_chain.count()
    assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)
    assert {"workcoach", "therapist", "dpo"} <= {h["actor"]["name"] for h in history}
    assert any(h["actor"]["organisation_kind"] == "benefits_agency" and h["outcome"] == "denied" for h in history)


def test_the_export_is_logged_for_every_referral_it_gives_out(world):
    second = make_referral(world.therapist, world.site, local_reference="KTT-000123")

    _export(world.dpo, world.referral)

    exports = AccessEvent.objects.filter(actor_id=world.dpo.pk, action="export", outcome="allowed")
    assert sorted(str(e.referral_id) for e in exports) == sorted([str(world.referral.pk), str(second.pk)])
    assert {e.client_pseudonym for e in exports} == {world.referral.client_id}


@pytest.mark.parametrize("role", ["therapist", "lead", "other_provider_dpo", "work_coach", "reviewer", "admin"])
def test_it_validates_that_only_the_providers_dpo_exports(world, role):
    response = _export(world.user(role), world.referral)

    assert response.status_code == 404
    assert "9434765919" not in response.content.decode()
    assert "KTT-000123" not in response.content.decode()
    denied = AccessEvent.objects.filter(actor_id=world.user(role).pk, action="export", outcome="denied")
    # Once on the referral's chain; the actor's own other chains get a trace naming no client or referral.
    assert denied.filter(chain=world.kent).count() == 1
    assert not denied.exclude(chain=world.kent).exclude(client_pseudonym=None, referral_id=None).exists()


def test_it_costs_the_same_number_of_queries_however_long_the_history(world, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_client(world.dpo)
    client.get("/api/v1/me/")
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/api/v1/referrals/{world.referral.pk}/subject-access-export/").status_code == 200
    few = len(captured.captured_queries)
    assert few > 0
    for _ in range(10):
        api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    with django_assert_max_num_queries(few):
        assert client.get(f"/api/v1/referrals/{world.referral.pk}/subject-access-export/").status_code == 200
