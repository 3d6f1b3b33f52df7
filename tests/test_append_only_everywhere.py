"""Every append-only table refuses, in the database itself, what an insider with raw SQL would try: UPDATE, DELETE,
an upsert that replaces a row, SQLite's INSERT OR REPLACE and PostgreSQL's TRUNCATE; the rows stay as they were.
The triggers are back after every migrate, whatever a migration rebuilt."""

from datetime import date

import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.db import DatabaseError, connection, transaction

from consent import services
from consent.access import triggers
from consent.access.log import AccessContext, verify_chain
from consent.access.models import AccessEvent, AlertDisposition, VerifiedCheckpoint
from consent.models import (
    ConsentRecord,
    ConsentTemplate,
    Decline,
    Discharge,
    ScopeWithdrawal,
    VoluntarinessCheck,
    Withdrawal,
)
from consent.reports.models import ComplianceReportSnapshot
from tests.conftest import api_client, give_consent, intake_check, make_referral
from tests.factories import ACKNOWLEDGED, at

MODELS = (AccessEvent, AlertDisposition, VerifiedCheckpoint, ConsentRecord, Withdrawal, ScopeWithdrawal,
          VoluntarinessCheck, Decline, Discharge, ComplianceReportSnapshot, ConsentTemplate)  # fmt: skip


@pytest.fixture
def every_record(world):
    """At least one row in every append-only table (the template is used, so it is append-only too)."""
    context = AccessContext.for_command(world.therapist, "test")
    referral = world.referral
    services.record_consent(
        context=context, referral_id=referral.pk, template=world.template, method="verbal", given_at=at(referral.referred_on),
        scopes=["treatment", "contact_by_sms"], acknowledgements=dict(ACKNOWLEDGED),
    )  # fmt: skip
    intake_check(world.therapist, referral)
    services.record_scope_withdrawal(context=context, referral_id=referral.pk, scopes=["contact_by_sms"],
                                     withdrawn_at=at(date(2026, 9, 20)), reason="no_longer_wanted")  # fmt: skip
    services.record_withdrawal(context=context, referral_id=referral.pk, withdrawn_at=at(date(2026, 10, 1)), reason="other")
    discharged = make_referral(world.therapist, world.site)
    give_consent(world.therapist, discharged, world.template)
    services.discharge_referral(context=context, referral_id=discharged.pk, discharged_on=date(2026, 11, 1), reason="completed")
    declined = make_referral(world.therapist, world.site)
    services.record_decline(context=context, referral_id=declined.pk, declined_on=date(2026, 9, 14))
    api_client(world.work_coach).get(f"/api/v1/referrals/{referral.pk}/")
    alert = AccessEvent.objects.filter(chain=world.kent, actor_name="workcoach").get()
    response = api_client(world.dpo).post(f"/api/v1/access-events/alerts/{alert.pk}/disposition/",
                                          {"disposition": "no_concern", "note": "Refused as it should be."})  # fmt: skip
    assert response.status_code == 201
    response = api_client(world.dpo).post(
        f"/api/v1/pilots/{world.pilot.pk}/compliance-reports/", {"period": "2026-Q3"}, format="json"
    )
    assert response.status_code == 201
    assert verify_chain(organisation_ids=[world.kent.pk]).verified  # leaves a checkpoint
    for model in MODELS:
        assert model.objects.exists(), model.__name__


def _rows(model) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {model._meta.db_table} ORDER BY {model._meta.pk.column}")  # noqa: S608
        return cursor.fetchall()


def _refused(sql: str, params=()) -> str:
    with pytest.raises(DatabaseError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(refusal.value)


def _columns(model, *, with_pk=True) -> list[str]:
    return [f.column for f in model._meta.local_concrete_fields if with_pk or not f.primary_key]


def _change(model, source: str = "") -> str:
    """SQL that changes a column of a row (not the key, not a foreign key): `column = new value`."""
    fields = [f for f in model._meta.local_concrete_fields if not f.primary_key and not f.is_relation]
    text = next((f for f in fields if f.get_internal_type() in ("CharField", "TextField", "SlugField")), None)
    if text is not None:
        return f"{text.column} = substr({source}{text.column}, 2) || 'x'"
    day = next(f for f in fields if f.get_internal_type() == "DateField")
    later = f"date({source}{day.column}, '+1 day')" if connection.vendor == "sqlite" else f"{source}{day.column} + 1"
    return f"{day.column} = {later}"


def _attempts(model, pk) -> dict[str, str]:
    table, change, key = model._meta.db_table, _change(model), model._meta.pk.column
    columns = ", ".join(_columns(model))
    attempts = {
        "UPDATE": f"UPDATE {table} SET {change} WHERE {key} = %s",
        "UPDATE of every row": f"UPDATE {table} SET {change}",
        "DELETE": f"DELETE FROM {table} WHERE {key} = %s",
        "DELETE of every row": f"DELETE FROM {table}",
        "upsert": f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE {key} = %s "
                  f"ON CONFLICT ({key}) DO UPDATE SET {_change(model, 'excluded.')}",
    }  # fmt: skip
    if connection.vendor == "sqlite":
        attempts["REPLACE"] = f"INSERT OR REPLACE INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE {key} = %s"
        # A new key colliding on another unique key: REPLACE would delete the old row to make room.
        others = ", ".join(_columns(model, with_pk=False))
        attempts["REPLACE on another unique key"] = (
            f"REPLACE INTO {table} ({others}) SELECT {others} FROM {table} WHERE {key} = %s"
        )
    return attempts


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_it_refuses_every_change_in_place_through_raw_sql_and_the_rows_stay(world, every_record, model):
    pk = model.objects.order_by("pk").values_list("pk", flat=True).first()
    if connection.vendor == "sqlite" and isinstance(pk, object) and hasattr(pk, "hex"):
        pk = pk.hex
    before = _rows(model)
    for name, sql in _attempts(model, pk).items():
        if "REPLACE on another" in name and model not in (AccessEvent, Decline, Discharge, ConsentTemplate):
            continue  # no unique key a copy would collide on but the primary key: a copy without it is simply a new row
        message = _refused(sql, [pk] if "%s" in sql else [])
        assert "append-only" in message, (name, message)
        assert _rows(model) == before, name


def test_a_consents_scopes_cannot_be_rewritten_by_an_orm_upsert(world):
    """The attack of issue 14: bulk_create with update_conflicts rewrote a consent's scopes."""
    consent = give_consent(world.therapist, world.referral, world.template)
    before = _rows(ConsentRecord)
    consent.scopes = ["treatment", "share_with_gp"]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.objects.bulk_create([consent], update_conflicts=True, unique_fields=["id"], update_fields=["scopes"])
    assert _rows(ConsentRecord) == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="TRUNCATE is PostgreSQL's: run with DATABASE_URL set")
@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_truncate_is_refused_on_postgresql(world, every_record, model):
    before = _rows(model)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert "append-only" in _refused(f"TRUNCATE {model._meta.db_table} CASCADE")
    assert _rows(model) == before


def test_a_template_is_append_only_once_used_and_editable_before(world):
    unused = ConsentTemplate.objects.create(code="draft", version=1, title="Draft", body="Words", effective_from=date(2026, 1, 1))
    table = ConsentTemplate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET body = 'Better words' WHERE id = %s", [unused.pk])  # noqa: S608
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [unused.pk])  # noqa: S608
    assert not ConsentTemplate.objects.filter(pk=unused.pk).exists()

    give_consent(world.therapist, world.referral, world.template)
    before = _rows(ConsentTemplate)
    assert "append-only" in _refused(f"UPDATE {table} SET body = 'Other words' WHERE id = %s", [world.template.pk])  # noqa: S608
    assert "append-only" in _refused(f"DELETE FROM {table} WHERE id = %s", [world.template.pk])  # noqa: S608
    assert _rows(ConsentTemplate) == before
    # Ending its period is not a change to what the client was told.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET effective_to = %s WHERE id = %s", [date(2027, 1, 1), world.template.pk])  # noqa: S608
    assert ConsentTemplate.objects.get(pk=world.template.pk).effective_to == date(2027, 1, 1)


def test_the_triggers_are_back_after_every_migrate(world, every_record):
    # What a migration that rebuilds a table does to its triggers on SQLite (and an insider can do anywhere).
    triggers.remove(connection)
    with connection.cursor() as cursor, transaction.atomic():
        cursor.execute("UPDATE consent_discharge SET reason = reason")

    emit_post_migrate_signal(verbosity=0, interactive=False, db=connection.alias)

    assert "append-only" in _refused("UPDATE consent_discharge SET reason = 'not_suitable'")
    assert "append-only" in _refused("DELETE FROM access_accessevent")


def test_retention_still_erases_identifiers_through_its_one_path(world, every_record):
    """The append-only tables hold no identifiers: retention changes only clients and referrals, and is not refused."""
    from consent.models import Client
    from consent.retention import RetentionPolicy, apply_retention

    result = apply_retention(policy=RetentionPolicy(years=1), today=date(2030, 1, 1))

    assert result.erased >= 1
    assert not Client.objects.exclude(local_reference="").filter(identifiers_erased_at__isnull=False).exists()
    assert verify_chain().verified
