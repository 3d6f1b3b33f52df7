"""Finding a client by local reference: only among the clients the user may already see."""

from django.test import Client

from tests.conftest import api_client, make_referral


def test_the_api_search_finds_only_the_users_own_clients(world):
    make_referral(world.other_provider_therapist, world.medway_site, local_reference="KTT-000999")
    for parameter in ("search", "local_reference"):
        body = api_client(world.therapist).get(f"/api/v1/referrals/?{parameter}=ktt-000").json()
        assert [r["client"]["local_reference"] for r in body["results"]] == ["KTT-000123"]
        assert api_client(world.unassigned_therapist).get(f"/api/v1/referrals/?{parameter}=KTT-000123").json()["count"] == 0
        assert api_client(world.other_provider_therapist).get(f"/api/v1/referrals/?{parameter}=KTT-000123").json()["count"] == 0


def test_the_web_search_finds_only_the_users_own_clients(world):
    page = Client()
    page.force_login(world.unassigned_therapist)
    html = page.get("/clients/?q=KTT-000123").content.decode()
    # The search box keeps what was typed; no client is found behind it.
    assert "No clients match this search" in html and str(world.referral.pk) not in html
    page.force_login(world.therapist)
    html = page.get("/clients/?q=000123").content.decode()
    assert "KTT-000123" in html and "1 found" in html
