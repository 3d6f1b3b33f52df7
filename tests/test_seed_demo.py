"""seed_demo builds the demo world of the README ("The two commands") once, however often it runs."""

import pytest
from django.core.management import call_command
from django.db.models import Max, Min

from colocation.models import Organisation, Pilot, Site, User
from consent.access.log import verify_chain
from consent.access.models import AccessEvent
from consent.models import ConsentTemplate, Pathway, Referral, ReferralStatus
from consent.selectors import with_voluntariness

pytestmark = pytest.mark.django_db

ACCOUNTS = {
    "therapist": ("Kent talking therapies", "therapist"),
    "lead": ("Kent talking therapies", "clinical_lead"),
    "dpo": ("Kent talking therapies", "dpo"),
    "other-therapist": (None, "therapist"),
    "reviewer": ("BACP", "reviewer"),
    "workcoach": ("Jobcentre Plus, Canterbury", "work_coach"),
    "admin": ("Kent talking therapies", "admin"),
}
MODELS = (Organisation, Site, Pilot, User, Referral, ConsentTemplate)


def _counts():
    return {model.__name__: model.objects.count() for model in MODELS}


def test_the_demo_world_is_built_once_with_every_pathway_status_and_voluntariness_outcome(capsys):
    call_command("seed_demo", "--password", "demo-pass-for-tests")
    printed = capsys.readouterr().out
    first = _counts()
    call_command("seed_demo", "--quiet", "--password", "demo-pass-for-tests")
    assert _counts() == first

    for username, (organisation, role) in ACCOUNTS.items():
        user = User.objects.select_related("staff_profile__organisation").get(username=username)
        assert user.staff_profile.role == role
        assert organisation is None or user.staff_profile.organisation.name == organisation
        assert user.check_password("demo-pass-for-tests")
        assert username in printed
    assert "http://127.0.0.1:8000/api/docs/" in printed
    assert User.objects.get(username="admin").is_superuser

    assert {"BACP", "UKCP", "Jobcentre Plus, Canterbury", "Kent talking therapies"} <= set(
        Organisation.objects.values_list("name", flat=True)
    )
    assert Site.objects.count() == 3
    assert Pilot.objects.get().overseen_by.count() == 2

    referrals = Referral.objects.all()
    assert set(referrals.values_list("pathway", flat=True)) == set(Pathway.values)
    assert set(referrals.values_list("status", flat=True)) == set(ReferralStatus.values)
    outcomes = {r.voluntariness_status for r in with_voluntariness(referrals)}
    assert outcomes == {"voluntary", "concern", "not_voluntary", "unknown"}
    span = referrals.aggregate(first=Min("referred_on"), last=Max("referred_on"))
    assert (span["last"] - span["first"]).days > 300  # a year of referrals


def test_the_demo_log_verifies_and_shows_the_work_coachs_attempts_to_the_dpo():
    call_command("seed_demo", "--quiet")
    assert verify_chain().verified
    attempts = AccessEvent.objects.filter(actor_name="workcoach", outcome="denied")
    assert attempts.count() == 2
    assert all("benefits_agency" in event.alert_reasons for event in attempts)
