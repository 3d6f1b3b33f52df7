"""A consent record carries the digest of its content as written; a receipt is issued only while the stored
content still matches it, so a record changed behind the service's back gets no signed receipt."""

from django.db import connection

from consent.models import ConsentRecord
from tests.conftest import api_client, behind_the_triggers, give_consent


def _receipt(world):
    return api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/consent-receipt/")


def test_it_stores_the_digest_of_the_consent_as_it_is_written(world):
    consent = give_consent(world.therapist, world.referral, world.template)
    stored = ConsentRecord.objects.get(pk=consent.pk)
    assert len(stored.content_sha256) == 64 and stored.content_sha256 == stored.content_digest()
    assert stored.content_signature
    assert _receipt(world).status_code == 200


def test_a_consent_whose_scopes_were_rewritten_in_the_database_gets_no_receipt(world):
    consent = give_consent(world.therapist, world.referral, world.template)
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET scopes = %s WHERE id = %s", ['["treatment", "share_with_gp"]', consent.pk]
        )

    response = _receipt(world)

    assert response.status_code == 409
    assert "no longer matches what was recorded at intake" in response.json()["detail"]
    html = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/consent-receipt/?format=html")
    assert html.status_code == 409
    world_page = api_client(world.therapist)
    world_page.force_login(world.therapist)
    page = world_page.get(f"/clients/{world.referral.pk}/receipt/")
    assert page.status_code == 409 and b"No receipt can be issued" in page.content


def test_a_rewritten_digest_alone_does_not_pass_either(world):
    consent = give_consent(world.therapist, world.referral, world.template)
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute("UPDATE consent_consentrecord SET content_sha256 = %s WHERE id = %s", ["0" * 64, consent.pk])
    assert _receipt(world).status_code == 409


def test_a_record_rewritten_with_its_digest_recomputed_still_gets_no_receipt(world):
    """The digest is sealed with the receipt key, held outside the database: recomputing it is not enough."""
    consent = give_consent(world.therapist, world.referral, world.template)
    consent.scopes = ["treatment", "share_with_gp"]
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute("UPDATE consent_consentrecord SET scopes = %s, content_sha256 = %s WHERE id = %s",
                       ['["treatment", "share_with_gp"]', consent.content_digest(), consent.pk])  # fmt: skip
    assert ConsentRecord.objects.get(pk=consent.pk).content_sha256 == ConsentRecord.objects.get(pk=consent.pk).content_digest()
    assert _receipt(world).status_code == 409
