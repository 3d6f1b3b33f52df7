"""The transaction model (docs/architecture.md, "Transactions"): a request is one transaction; a refused request
rolls back whole, whatever it wrote before the refusal, and the refusal's denied events are written after the
rollback, in a transaction of their own.

The views here write a row and then ask the firewall for a referral the user may not reach, through the
project's real error handling (the API's exception handler, the web pages' decorator) and middleware. The last
test plants the old model (a refusal that kept the request's transaction to keep its events) and shows the
check catches the write that survived.
"""

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpResponse
from django.test import Client as BrowserClient
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

import api.errors
from api.context import access_context
from config.urls import urlpatterns as project_urls
from consent.access import firewall
from consent.access.models import AccessEvent, Outcome
from tests.conftest import api_client
from web.pages import page

WRITTEN_BEFORE = "written before the refusal"


def _write_then_open(request, referral_id):
    Group.objects.create(name=WRITTEN_BEFORE)
    firewall.open_referral(access_context(request), referral_id, purpose=firewall.Purpose.CHANGE)


class WriteThenRefuse(APIView):
    def post(self, request, referral_id):
        _write_then_open(request, referral_id)
        return Response({"detail": "not reached"})


@page
def write_then_refuse_page(request, referral_id):
    _write_then_open(request, referral_id)
    return HttpResponse("not reached")


urlpatterns = [
    path("test-transactions/api/<str:referral_id>/", WriteThenRefuse.as_view()),
    path("test-transactions/page/<str:referral_id>/", write_then_refuse_page),
    path("", include(project_urls)),
]


@pytest.fixture(autouse=True)
def these_urls(settings):
    settings.ROOT_URLCONF = __name__


def refused_write(world, via: str):
    """(whether the write made before the refusal survived, the denied events on the referral's chain, the status)."""
    user = world.other_provider_therapist
    if via == "api":
        response = api_client(user).post(f"/test-transactions/api/{world.referral.pk}/", {}, format="json")
    else:
        browser = BrowserClient()
        browser.force_login(user)
        response = browser.get(f"/test-transactions/page/{world.referral.pk}/")
    denied = AccessEvent.objects.filter(chain=world.kent, referral_id=world.referral.pk, outcome=Outcome.DENIED).count()
    return Group.objects.filter(name=WRITTEN_BEFORE).exists(), denied, response.status_code


def assert_rolled_back_but_logged(written: bool, denied: int, status: int) -> None:
    assert status == 404
    assert not written, "a write made before the refusal survived it"
    assert denied == 1, f"the refusal left {denied} denied events on the referral's chain, not 1"


@pytest.mark.parametrize("via", ["api", "page"])
def test_it_rolls_back_a_write_made_before_a_refusal_and_keeps_the_refusals_events(world, via):
    assert_rolled_back_but_logged(*refused_write(world, via))


def test_a_write_outside_any_refusal_commits_with_its_events(world):
    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    assert response.status_code == 200
    assert AccessEvent.objects.filter(referral_id=world.referral.pk, outcome=Outcome.ALLOWED, action="read").count() == 1


def test_the_check_fails_on_the_old_model_where_a_refusal_kept_the_request_transaction(world, monkeypatch):
    # Planted: the refusal un-rolls-back the request to keep its denied events, as api.errors once did.
    def keep_the_request(request, refusal):
        transaction.set_rollback(False)

    monkeypatch.setattr(api.errors, "roll_back_and_log_after", keep_the_request)
    written, denied, status = refused_write(world, "api")
    assert written
    with pytest.raises(AssertionError, match="survived"):
        assert_rolled_back_but_logged(written, denied, status)
