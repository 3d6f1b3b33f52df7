"""The pages' forms: CSRF on every one, and a service's refusal shown next to its field with nothing written."""

import re

import pytest
from django.test import Client

from consent.models import Client as ClientRecord
from consent.models import ConsentRecord, Discharge, Referral, ScopeWithdrawal, Withdrawal
from tests.conftest import give_consent

POST_FORMS = ["/clients/new/", "/clients/{r}/consent/", "/clients/{r}/voluntariness-check/", "/clients/{r}/withdraw/",
              "/clients/{r}/discharge/", "/clients/{r}/decline/", "/clients/{r}/assignments/", "/break-glass/",
              "/dpo/alerts/dispose/", "/dpo/chain/", "/reports/{p}/freeze/", "/sign-in/", "/sign-out/"]  # fmt: skip
PAGES_WITH_FORMS = {
    "therapist": ["/clients/new/", "/clients/{r}/", "/clients/{r}/consent/", "/clients/{r}/voluntariness-check/",
                  "/clients/{r}/withdraw/", "/clients/{r}/discharge/", "/clients/{r}/receipt/"],
    "lead": ["/clients/{r}/assignments/", "/break-glass/", "/reports/{p}/"],
    "dpo": ["/dpo/alerts/", "/dpo/chain/", "/dpo/log/", "/reports/{p}/"],
}  # fmt: skip


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def rows() -> dict:
    return {
        model.__name__: model.objects.count()
        for model in (Referral, ClientRecord, ConsentRecord, Withdrawal, ScopeWithdrawal, Discharge)
    }


@pytest.mark.django_db
def test_every_post_form_is_refused_without_its_csrf_token_and_writes_nothing(world):
    give_consent(world.therapist, world.referral, world.template)
    before = rows()
    for user in (world.therapist, world.lead, world.dpo):
        client = signed_in(user, enforce_csrf_checks=True)
        for path in POST_FORMS:
            response = client.post(path.format(r=world.referral.pk, p=world.pilot.pk), {"anything": "x"})
            assert response.status_code == 403, (user, path, response.status_code)
    assert rows() == before


@pytest.mark.django_db
def test_every_form_that_posts_carries_a_csrf_token(world):
    give_consent(world.therapist, world.referral, world.template)
    for role, paths in PAGES_WITH_FORMS.items():
        client = signed_in(world.user(role))
        for path in paths:
            html = client.get(path.format(r=world.referral.pk, p=world.pilot.pk)).content.decode()
            forms = re.findall(r'<form[^>]*method="post".*?</form>', html, flags=re.S)
            assert forms, (role, path)
            for form in forms:
                assert 'name="csrfmiddlewaretoken"' in form, (role, path, form[:200])


def field_error(html: str, field: str) -> str:
    """The error shown next to a field (its error message element), or ''."""
    match = re.search(
        rf'id="id_{field}-error"><span class="nhsuk-u-visually-hidden">Error:</span> (.*?)</span>', html, flags=re.S
    )
    return match.group(1) if match else ""


@pytest.mark.django_db
def test_an_nhs_number_refused_by_the_service_is_shown_next_to_its_field_and_nothing_is_written(world):
    before = rows()
    response = signed_in(world.therapist).post("/clients/new/", {
        "local_reference": "KTT-NEW-1", "nhs_number": "1234567890", "site": world.site.pk, "referred_on": "2026-09-20",
        "how_heard": "gp", "pathway": "self_referral", "source_of_referral": "B1"})  # fmt: skip
    assert response.status_code == 400
    assert field_error(response.content.decode(), "nhs_number").startswith("Not a valid NHS number")
    assert rows() == before


@pytest.mark.django_db
def test_a_date_refused_by_the_service_is_shown_next_to_its_field(world):
    before = rows()
    response = signed_in(world.therapist).post("/clients/new/", {
        "local_reference": "KTT-NEW-2", "site": world.site.pk, "referred_on": "2099-01-01",
        "how_heard": "gp", "pathway": "self_referral", "source_of_referral": "B1"})  # fmt: skip
    assert "is in the future" in field_error(response.content.decode(), "referred_on")
    assert rows() == before


@pytest.mark.django_db
def test_consent_missing_an_acknowledgement_is_refused_next_to_the_acknowledgements_and_nothing_is_written(world):
    before = rows()
    response = signed_in(world.therapist).post(f"/clients/{world.referral.pk}/consent/", {
        "template": world.template.pk, "method": "verbal", "given_at": "2026-09-20T10:00", "scopes": ["treatment"],
        "acknowledgements": ["attendance_is_optional", "no_effect_on_benefits", "service_separate_from_jobcentre",
                             "nothing_shared_with_jobcentre"]})  # fmt: skip
    assert response.status_code == 400
    assert field_error(response.content.decode(), "acknowledgements").startswith("free_to_withdraw must be true")
    assert rows() == before


@pytest.mark.django_db
def test_withdrawing_a_use_never_agreed_is_refused_next_to_the_uses_and_nothing_is_written(world):
    give_consent(world.therapist, world.referral, world.template)  # treatment only
    before = rows()
    response = signed_in(world.therapist).post(
        f"/clients/{world.referral.pk}/withdraw/",
        {"what": "uses", "scopes": ["contact_by_sms"], "withdrawn_at": "2026-09-20T12:00", "reason": "no_longer_wanted"},
    )
    assert response.status_code == 400
    assert field_error(response.content.decode(), "scopes").startswith("Not in force, so nothing to withdraw: contact_by_sms")
    assert rows() == before


@pytest.mark.django_db
def test_a_discharge_before_the_referral_is_refused_next_to_its_date(world):
    before = rows()
    response = signed_in(world.therapist).post(
        f"/clients/{world.referral.pk}/discharge/", {"discharged_on": "2026-01-01", "reason": "completed"}
    )
    assert "cannot come before the referral" in field_error(response.content.decode(), "discharged_on")
    assert rows() == before


@pytest.mark.django_db
def test_a_status_the_service_refuses_is_shown_above_the_form(world):
    # Awaiting consent: nothing to withdraw from. The service's message names the status.
    before = rows()
    response = signed_in(world.therapist).post(
        f"/clients/{world.referral.pk}/withdraw/", {"what": "therapy", "withdrawn_at": "2026-09-20T12:00", "reason": "other"}
    )
    assert response.status_code == 400
    assert "The referral is awaiting_consent" in response.content.decode()
    assert rows() == before
