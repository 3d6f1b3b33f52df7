"""Consent records, withdrawals, voluntariness checks, declines and discharges are append-only: the API
answers 405 to PUT, PATCH and DELETE and nothing changes; the models refuse in-place changes whatever code
path tries; the services only ever add rows. A correction is a new record that supersedes the old one."""

import ast
import inspect
from datetime import date

import pytest
from django.forms.models import model_to_dict

from consent import services
from consent.access.log import AccessContext
from consent.models import AppendOnlyError, ConsentRecord, Decline, Discharge, Referral, VoluntarinessCheck, Withdrawal
from tests.conftest import api_client, give_consent, intake_check, make_referral
from tests.factories import at

METHODS = ("put", "patch", "delete")
MODELS = (ConsentRecord, Withdrawal, VoluntarinessCheck, Decline, Discharge)


def snapshot() -> dict:
    """Every field of every append-only row, and every referral's status."""
    rows = {
        model.__name__: sorted((r.pk, tuple(sorted(model_to_dict(r).items()))) for r in model.objects.all()) for model in MODELS
    }
    rows["status"] = sorted(Referral.objects.values_list("pk", "status"))
    return rows


@pytest.fixture
def episode(world):
    """A referral with one of each record: consent, intake check, withdrawal; and a discharged and a declined one."""
    referral = world.referral
    give_consent(world.therapist, referral, world.template)
    intake_check(world.therapist, referral)
    services.record_withdrawal(
        context=AccessContext.for_command(world.therapist, "test"), referral_id=referral.pk,
        withdrawn_at=at(date(2026, 10, 1)), reason="no_longer_wanted",
    )  # fmt: skip
    discharged = make_referral(world.therapist, world.site)
    give_consent(world.therapist, discharged, world.template)
    services.discharge_referral(
        context=AccessContext.for_command(world.therapist, "test"), referral_id=discharged.pk,
        discharged_on=date(2026, 11, 1), reason="completed",
    )  # fmt: skip
    declined = make_referral(world.therapist, world.site)
    services.record_decline(
        context=AccessContext.for_command(world.therapist, "test"), referral_id=declined.pk,
        declined_on=date(2026, 9, 14),
    )  # fmt: skip
    return {"referral": referral, "discharged": discharged, "declined": declined}


def _paths(world, episode) -> list[tuple[str, str]]:
    referral = episode["referral"]
    base = f"/api/v1/referrals/{referral.pk}"
    consent = referral.consents.get()
    check = referral.voluntariness_checks.get()
    withdrawal = referral.withdrawals.get()
    return [
        ("consents", f"{base}/consents/"),
        ("consent", f"{base}/consents/{consent.pk}/"),
        ("withdrawals", f"{base}/withdrawals/"),
        ("withdrawal", f"{base}/withdrawals/{withdrawal.pk}/"),
        ("voluntariness-checks", f"{base}/voluntariness-checks/"),
        ("voluntariness-check", f"{base}/voluntariness-checks/{check.pk}/"),
        ("discharge", f"/api/v1/referrals/{episode['discharged'].pk}/discharge/"),
        ("decline", f"/api/v1/referrals/{episode['declined'].pk}/decline/"),
    ]


NAMES = [
    "consents",
    "consent",
    "withdrawals",
    "withdrawal",
    "voluntariness-checks",
    "voluntariness-check",
    "discharge",
    "decline",
]
CHANGE = {
    "consents": {"scopes": ["treatment", "share_with_gp"], "method": "written"},
    "consent": {"scopes": ["treatment", "share_with_gp"], "free_to_withdraw": False},
    "withdrawals": {"reason": "felt_pressured"},
    "withdrawal": {"reason": "felt_pressured"},
    "voluntariness-checks": {"sanction_mentioned": True},
    "voluntariness-check": {"sanction_mentioned": True},
    "discharge": {"reason": "not_suitable"},
    "decline": {"declined_on": "2026-09-15"},
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", NAMES)
def test_it_answers_405_to_put_patch_and_delete_and_changes_nothing(world, episode, name, method):
    path = dict(_paths(world, episode))[name]
    client = api_client(world.therapist)
    before = snapshot()
    response = getattr(client, method)(path, CHANGE[name], format="json")
    assert response.status_code == 405, (path, response.status_code, response.content[:300])
    assert "not allowed" in response.json()["detail"]
    assert method.upper() not in response["Allow"]
    assert snapshot() == before


@pytest.mark.parametrize("name", NAMES)
def test_it_still_reads_or_adds_where_it_answers_405(world, episode, name):
    """The 405s are not 404s in disguise: the same paths answer the methods they do allow."""
    path = dict(_paths(world, episode))[name]
    response = api_client(world.therapist).get(path) if not path.endswith("s/") else None
    if response is not None and name in ("consent", "withdrawal", "voluntariness-check"):
        assert response.status_code == 200
    allow = api_client(world.therapist).options(path)
    assert allow.status_code == 200
    assert set(allow["Allow"].replace(" ", "").split(",")) & {"POST", "GET"}


def test_a_work_coach_gets_405_too_never_a_hint_that_the_record_exists(world, episode):
    for name, path in _paths(world, episode):
        before = snapshot()
        response = api_client(world.work_coach).delete(path)
        assert response.status_code == 405, name
        assert snapshot() == before


# ---- the models refuse in-place changes, whatever code path tries ------------------------------------------


def _one(model, episode):
    return model.objects.order_by("pk").first()


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_it_refuses_saving_a_stored_record_again(world, episode, model):
    record = _one(model, episode)
    before = snapshot()
    with pytest.raises(AppendOnlyError, match="append-only"):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.save(update_fields=["recorded_at"])
    assert snapshot() == before


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_it_refuses_deleting_a_record(world, episode, model):
    record = _one(model, episode)
    before = snapshot()
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        record.delete()
    assert snapshot() == before


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_it_refuses_bulk_updates_and_deletes_which_bypass_save(world, episode, model):
    before = snapshot()
    with pytest.raises(AppendOnlyError):
        model.objects.all().update(recorded_at=at(date(2020, 1, 1)))
    with pytest.raises(AppendOnlyError):
        model.objects.update(recorded_at=at(date(2020, 1, 1)))
    with pytest.raises(AppendOnlyError):
        model.objects.filter(pk=_one(model, episode).pk).delete()
    with pytest.raises(AppendOnlyError):
        model.objects.bulk_update([_one(model, episode)], ["recorded_at"])
    assert snapshot() == before


def test_it_refuses_changes_through_a_referrals_related_records(world, episode):
    before = snapshot()
    with pytest.raises(AppendOnlyError):
        episode["referral"].consents.update(method="written")
    with pytest.raises(AppendOnlyError):
        episode["referral"].withdrawals.all().delete()
    with pytest.raises(AppendOnlyError):
        episode["referral"].voluntariness_checks.update(sanction_mentioned=True)
    assert snapshot() == before


def test_the_database_refuses_consent_without_every_acknowledgement_even_bypassing_the_service(world):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ConsentRecord.objects.bulk_create(
            [ConsentRecord(referral=world.referral, template=world.template, given_at=at(date(2026, 9, 14)), method="verbal",
                           scopes=["treatment"], recorded_by=world.therapist, attendance_is_optional=True,
                           no_effect_on_benefits=True, service_separate_from_jobcentre=True,
                           nothing_shared_with_jobcentre=False, free_to_withdraw=True)]
        )  # fmt: skip


# ---- the services only add ---------------------------------------------------------------------------------

CHANGING_WORDS = ("update", "delete", "edit", "change", "amend", "modify", "remove", "erase", "replace", "overwrite")


def test_the_services_module_offers_no_function_that_changes_or_deletes_a_record():
    public = [name for name, value in inspect.getmembers(services, inspect.isfunction) if value.__module__ == services.__name__]
    assert "record_consent" in public  # the scan sees the module's own functions
    offending = [name for name in public if not name.startswith("_") and any(word in name.lower() for word in CHANGING_WORDS)]
    assert offending == []


def test_the_services_never_update_or_delete_rows_in_their_code():
    """Every write in consent/services.py adds a row; the only in-place save is a referral's status."""
    tree = ast.parse(inspect.getsource(services))
    calls = [
        ast.unparse(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and (node.func.attr in ("delete", "bulk_update", "update_or_create", "raw", "execute")
             # dict.update on a local name is fine; a queryset's update() is reached through a chain.
             or (node.func.attr == "update" and not isinstance(node.func.value, ast.Name)))
    ]  # fmt: skip
    assert calls == []


def test_a_correction_adds_a_record_and_leaves_the_original_as_it_was(world, episode):
    referral = episode["referral"]
    original = referral.voluntariness_checks.get()
    stored = model_to_dict(original)
    response = api_client(world.therapist).post(
        f"/api/v1/referrals/{referral.pk}/voluntariness-checks/",
        {"checked_at": "2026-09-14T11:00:00Z", "stage": "intake", "told_attendance_required": False,
         "sanction_mentioned": True, "feels_free_to_stop": True, "goals_set_by_client": True,
         "employment_goal_raised_by": "nobody", "supersedes": original.pk},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    assert VoluntarinessCheck.objects.filter(referral=referral).count() == 2
    assert model_to_dict(VoluntarinessCheck.objects.get(pk=original.pk)) == stored
    assert response.json()["voluntariness"]["status"] == "not_voluntary"


# ---- consent templates: immutable once used ---------------------------------------------------------------


def test_a_template_hashes_its_own_body(world):
    import hashlib

    assert world.template.body_sha256 == hashlib.sha256(world.template.body.encode()).hexdigest()
    world.template.body_sha256 = "0" * 64  # typed in: ignored, derived again on save
    world.template.save()
    world.template.refresh_from_db()
    assert world.template.body_sha256 == hashlib.sha256(world.template.body.encode()).hexdigest()


def test_an_unused_template_may_still_be_edited(world):
    world.template.body = "Reworded before anyone consented to it."
    world.template.save()
    world.template.refresh_from_db()
    assert world.template.body == "Reworded before anyone consented to it."


@pytest.mark.parametrize("field, value", [("body", "Something else"), ("title", "New"), ("version", 99), ("language", "cy")])
def test_a_template_used_for_consent_cannot_change(world, field, value):
    from django.core.exceptions import ValidationError

    from consent.models import ConsentTemplate

    give_consent(world.therapist, world.referral, world.template)
    stored = model_to_dict(ConsentTemplate.objects.get(pk=world.template.pk))
    setattr(world.template, field, value)
    with pytest.raises(ValidationError, match="add a new version"):
        world.template.save()
    assert model_to_dict(ConsentTemplate.objects.get(pk=world.template.pk)) == stored


def test_a_used_template_cannot_change_through_a_bulk_update_either(world):
    from django.core.exceptions import ValidationError

    from consent.models import ConsentTemplate

    give_consent(world.therapist, world.referral, world.template)
    with pytest.raises(ValidationError, match="new version"):
        ConsentTemplate.objects.filter(pk=world.template.pk).update(title="Changed")
    # Ending a template's period is not a change to what the client was told.
    ConsentTemplate.objects.filter(pk=world.template.pk).update(effective_to=date(2027, 1, 1))
    assert ConsentTemplate.objects.get(pk=world.template.pk).effective_to == date(2027, 1, 1)
