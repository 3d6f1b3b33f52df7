from tests.conftest import api_client


def test_it_lists_only_the_therapists_own_referral(world):
    response = api_client(world.therapist).get("/api/v1/referrals/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(world.referral.pk)]
