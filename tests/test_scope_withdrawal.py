"""Withdrawing one use (say, SMS contact) is its own append-only record: therapy carries on and can still end."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from consent import selectors, services
from consent.access.log import AccessContext
from consent.models import AppendOnlyError, ConsentRecord, ReferralStatus, ScopeWithdrawal, Withdrawal
from consent.receipts import consent_receipt, verify_receipt
from tests.conftest import api_client
from tests.factories import ACKNOWLEDGED, at


def consent_to(world, scopes, day=date(2026, 9, 14), hour=10):
    return services.record_consent(
        context=AccessContext.for_command(world.therapist, "test"), referral_id=world.referral.pk, template=world.template,
        method="verbal", given_at=at(day, hour), scopes=scopes, acknowledgements=dict(ACKNOWLEDGED),
    )  # fmt: skip


def withdraw_uses(world, scopes, when=None, user=None):
    return services.record_scope_withdrawal(
        context=AccessContext.for_command(user or world.therapist, "test"), referral_id=world.referral.pk, scopes=scopes,
        withdrawn_at=when or at(date(2026, 9, 20), 12), reason="no_longer_wanted",
    )  # fmt: skip


@pytest.fixture
def consented(world):
    consent_to(world, ["treatment", "contact_by_sms", "contact_by_phone"])
    return world


def test_it_withdraws_sms_only_and_therapy_carries_on(consented):
    w = consented
    rows = withdraw_uses(w, ["contact_by_sms"])
    assert [row.scope for row in rows] == ["contact_by_sms"]
    w.referral.refresh_from_db()
    assert w.referral.status == ReferralStatus.ACTIVE
    assert Withdrawal.objects.count() == 0
    assert selectors.consent_state(w.referral).in_force == ["treatment", "contact_by_phone"]


def test_a_referral_with_a_use_withdrawn_can_still_be_discharged(consented):
    withdraw_uses(consented, ["contact_by_sms"])
    services.discharge_referral(context=AccessContext.for_command(consented.therapist, "test"),
                                referral_id=consented.referral.pk, discharged_on=date(2026, 10, 1), reason="completed")  # fmt: skip
    consented.referral.refresh_from_db()
    assert consented.referral.status == ReferralStatus.DISCHARGED


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["treatment"], "Treatment cannot be withdrawn as one use"),
        (["share_with_gp"], "Not in force"),
        (["share_with_jobcentre"], "Sharing with a benefits agency"),
        (["no_such_use"], "Unknown use"),
        ([], "Choose at least one use"),
    ],
)
def test_it_refuses_what_cannot_be_withdrawn_as_a_use_and_writes_nothing(consented, scopes, message):
    with pytest.raises(ValidationError) as refused:
        withdraw_uses(consented, scopes)
    assert any(text.startswith(message) for text in refused.value.message_dict["scopes"])
    assert ScopeWithdrawal.objects.count() == 0


def test_a_use_already_withdrawn_cannot_be_withdrawn_again(consented):
    withdraw_uses(consented, ["contact_by_sms"])
    with pytest.raises(ValidationError, match="already withdrawn"):
        withdraw_uses(consented, ["contact_by_sms"], when=at(date(2026, 9, 21), 12))
    assert ScopeWithdrawal.objects.count() == 1


def test_nothing_to_withdraw_before_consent_or_after_the_episode_ends(world):
    with pytest.raises(ValidationError, match="awaiting_consent"):
        withdraw_uses(world, ["contact_by_sms"])
    assert ScopeWithdrawal.objects.count() == 0


def test_a_later_consent_that_agrees_to_the_use_again_puts_it_back_in_force(consented):
    withdraw_uses(consented, ["contact_by_sms"])
    consent_to(consented, ["treatment", "contact_by_sms"], day=date(2026, 9, 25))
    assert selectors.consent_state(consented.referral).in_force == ["treatment", "contact_by_sms"]


def test_a_colleague_who_may_not_change_the_referral_is_refused_as_not_found(consented):
    from consent.access.firewall import ReferralNotFound

    for user in (consented.unassigned_therapist, consented.other_provider_therapist, consented.work_coach, consented.dpo):
        with pytest.raises(ReferralNotFound):
            withdraw_uses(consented, ["contact_by_sms"], user=user)
    assert ScopeWithdrawal.objects.count() == 0


def test_a_scope_withdrawal_cannot_be_changed_or_deleted(consented):
    row = withdraw_uses(consented, ["contact_by_sms"])[0]
    row.reason = "other"
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        ScopeWithdrawal.objects.filter(pk=row.pk).update(reason="other")
    with pytest.raises(AppendOnlyError):
        ScopeWithdrawal.objects.all().delete()


def test_the_database_refuses_treatment_as_a_withdrawn_use(consented):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consent_scopewithdrawal (referral_id, scope, withdrawn_at, reason, recorded_by_id, recorded_at) "
            "VALUES (%s, 'treatment', %s, 'other', %s, %s)",
            [consented.referral.pk.hex if connection.vendor == "sqlite" else consented.referral.pk, at(date(2026, 9, 20)),
             consented.therapist.pk, at(date(2026, 9, 20))],
        )  # fmt: skip


# ---- the API ---------------------------------------------------------------------------------------------------


def test_the_api_withdraws_named_scopes_only(consented):
    response = api_client(consented.therapist).post(
        f"/api/v1/referrals/{consented.referral.pk}/withdrawals/",
        {"withdrawn_at": "2026-09-20T12:00:00Z", "reason": "no_longer_wanted", "scopes": ["contact_by_sms"]}, format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert [(row["scope"], row["reason"]) for row in body["scope_withdrawals"]] == [("contact_by_sms", "no_longer_wanted")]
    assert body["withdrawals"] == []


def test_the_api_without_scopes_still_withdraws_from_therapy(consented):
    response = api_client(consented.therapist).post(
        f"/api/v1/referrals/{consented.referral.pk}/withdrawals/",
        {"withdrawn_at": "2026-09-20T12:00:00Z", "reason": "no_longer_wanted"}, format="json",
    )  # fmt: skip
    assert response.status_code == 201 and response.json()["status"] == "withdrawn"


def test_the_api_answers_a_refused_scope_with_a_400_naming_the_field(consented):
    response = api_client(consented.therapist).post(
        f"/api/v1/referrals/{consented.referral.pk}/withdrawals/",
        {"withdrawn_at": "2026-09-20T12:00:00Z", "reason": "other", "scopes": ["treatment"]}, format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert "Treatment cannot be withdrawn" in str(response.json()["errors"]["scopes"])
    assert ScopeWithdrawal.objects.count() == 0


# ---- the receipt says where consent stands -----------------------------------------------------------------


def test_the_signed_receipt_states_the_uses_withdrawn_and_still_verifies(consented):
    withdraw_uses(consented, ["contact_by_sms"])
    document = consent_receipt(selectors.latest_consent(consented.referral))
    status = document["receipt"]["consentStatus"]
    assert status["state"] == "in_force"
    assert status["scopesInForce"] == ["treatment", "contact_by_phone"]
    assert [row["scope"] for row in status["scopesWithdrawn"]] == ["contact_by_sms"]
    assert verify_receipt(document)


def test_the_receipt_of_a_client_who_withdrew_from_therapy_says_so(consented):
    services.record_withdrawal(context=AccessContext.for_command(consented.therapist, "test"), referral_id=consented.referral.pk,
                               withdrawn_at=at(date(2026, 9, 22)), reason="no_longer_wanted")  # fmt: skip
    document = consent_receipt(ConsentRecord.objects.get(referral=consented.referral))
    assert document["receipt"]["consentStatus"]["state"] == "withdrawn"
    assert document["receipt"]["consentStatus"]["scopesInForce"] == []
    assert document["receipt"]["consentStatus"]["endedOn"] == "2026-09-22"


def test_the_api_receipt_prints_as_html_with_the_wording_and_status(consented):
    withdraw_uses(consented, ["contact_by_sms"])
    response = api_client(consented.therapist).get(f"/api/v1/referrals/{consented.referral.pk}/consent-receipt/?format=html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert consented.template.body in page
    assert "Withdrawn on 20 September 2026" in page and "What the Jobcentre gets" in page and "How to withdraw" in page
    assert "@media print" in page


def test_the_api_html_receipt_is_refused_like_the_json_one(consented):
    for user in (consented.work_coach, consented.unassigned_therapist, consented.dpo):
        response = api_client(user).get(f"/api/v1/referrals/{consented.referral.pk}/consent-receipt/?format=html")
        assert response.status_code == 404
        assert "KTT-000123" not in response.content.decode()
