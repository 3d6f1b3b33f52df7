"""Finding a client by the provider's local reference: only among the referrals the firewall lets the user see."""

import pytest
from django.test import Client

from consent import selectors
from consent.access import firewall
from consent.access.models import AccessEvent
from consent.models import Referral
from tests.conftest import api_client, make_referral


def _references(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(row["client"]["local_reference"] for row in response.json()["results"])


@pytest.fixture
def references(world):
    make_referral(world.therapist, world.site, local_reference="KTT-000124")
    make_referral(world.therapist, world.site, local_reference="ABC-999")
    # The same kind of reference where the therapist may not look: another team's lead, another provider.
    make_referral(world.other_team_lead, world.site, local_reference="KTT-000125")
    make_referral(world.other_provider_therapist, world.medway_site, local_reference="KTT-000126")
    return world


def test_search_finds_part_of_a_reference_in_any_case_among_the_users_own_referrals(references):
    response = api_client(references.therapist).get("/api/v1/referrals/?search=ktt-0001")
    assert _references(response) == ["KTT-000123", "KTT-000124"]


def test_local_reference_finds_the_whole_reference_only(references):
    therapist = api_client(references.therapist)
    assert _references(therapist.get("/api/v1/referrals/?local_reference=ktt-000124")) == ["KTT-000124"]
    assert _references(therapist.get("/api/v1/referrals/?local_reference=KTT-0001")) == []


@pytest.mark.parametrize("reference", ["KTT-000125", "KTT-000126"])
def test_a_reference_outside_the_users_assignment_is_not_found(references, reference):
    assert _references(api_client(references.therapist).get(f"/api/v1/referrals/?local_reference={reference}")) == []
    assert _references(api_client(references.therapist).get(f"/api/v1/referrals/?search={reference}")) == []


def test_a_lead_finds_their_teams_referrals_and_not_another_teams(references):
    assert _references(api_client(references.lead).get("/api/v1/referrals/?search=KTT")) == ["KTT-000123", "KTT-000124"]
    assert _references(api_client(references.other_team_lead).get("/api/v1/referrals/?search=KTT")) == ["KTT-000125"]


def test_search_combines_with_the_other_filters(references):
    response = api_client(references.therapist).get("/api/v1/referrals/?search=KTT&status=active")
    assert _references(response) == []


def test_a_work_coach_searching_is_refused_and_logged(references):
    response = api_client(references.work_coach).get("/api/v1/referrals/?search=KTT")
    assert response.status_code == 403
    assert "KTT" not in response.content.decode()
    assert AccessEvent.objects.filter(actor_id=references.work_coach.pk, action="list", outcome="denied").exists()


def test_a_search_longer_than_any_reference_is_a_400(references):
    response = api_client(references.therapist).get(f"/api/v1/referrals/?search={'K' * 65}")
    assert response.status_code == 400
    assert "search" in response.json()["errors"]


def test_the_selector_only_narrows_the_queryset_it_is_given(references):
    visible = firewall.referrals_visible_to(references.therapist)
    found = selectors.search_referrals(visible, "KTT")
    assert set(found.values_list("pk", flat=True)) <= set(visible.values_list("pk", flat=True))
    assert selectors.search_referrals(Referral.objects.none(), "KTT").count() == 0
    assert selectors.search_referrals(visible, "  ").count() == visible.count()


def test_a_search_costs_the_same_number_of_queries_whatever_the_number_of_matches(references, django_assert_max_num_queries):
    therapist = api_client(references.therapist)
    with django_assert_max_num_queries(15) as few:
        therapist.get("/api/v1/referrals/?search=KTT")
    for n in range(10):
        make_referral(references.therapist, references.site, local_reference=f"KTT-1{n:05d}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = therapist.get("/api/v1/referrals/?search=KTT")
    assert response.json()["count"] == 12


def test_the_web_search_finds_only_the_users_own_clients(world):
    page = Client()
    page.force_login(world.unassigned_therapist)
    html = page.get("/clients/?q=KTT-000123").content.decode()
    # The search box keeps what was typed; no client is found behind it.
    assert "No clients match this search" in html and str(world.referral.pk) not in html
    page.force_login(world.therapist)
    html = page.get("/clients/?q=000123").content.decode()
    assert "KTT-000123" in html and "1 found" in html
