"""Database triggers that make every append-only table append-only, on SQLite and PostgreSQL alike.

The models refuse in-place changes first (AppendOnlyRecord, SnapshotIsFrozen, the log's own code); the database
refuses them again for whatever reaches it another way: a QuerySet.update, a bulk_create with update_conflicts,
raw SQL, a shell on the database file.

- UPDATE and DELETE are refused, row by row;
- an upsert that would replace a row is refused: INSERT ... ON CONFLICT DO UPDATE fires the UPDATE trigger;
- on SQLite, INSERT OR REPLACE deletes the row it conflicts with without firing DELETE triggers (unless
  recursive_triggers is on, which a shell on the file would not set), so a BEFORE INSERT trigger refuses any
  row that would collide with an existing one on its primary key or any unique key;
- on PostgreSQL, TRUNCATE is refused by a statement trigger.

Consent templates are immutable once used (ConsentTemplate): before a consent record points at one, an
administrator may still edit or delete it; after, its text and identity (IMMUTABLE_FIELDS) cannot change nor
the row go. Ending a template's period (effective_to) stays possible.

The one path that erases anything: the retention job (consent.retention.apply_retention) erases a client's
identifiers. They live only in the client and referral rows, which are not append-only; the append-only
tables name clients by pseudonym or referral id only, so retention never needs to change them and no trigger
lets anything through.

The triggers are (re)installed after every `migrate` (consent.access.apps): SQLite drops a table's triggers
when a migration rebuilds it, and installing is idempotent.
"""

from django.apps import apps
from django.db import connections, models

# Tables that only ever grow, named by model so their unique keys are read from the models.
APPEND_ONLY_MODELS = (
    "access.AccessEvent", "access.AlertDisposition", "access.VerifiedCheckpoint",
    "consent.ConsentRecord", "consent.Withdrawal", "consent.ScopeWithdrawal", "consent.VoluntarinessCheck",
    "consent.Decline", "consent.Discharge", "reports.ComplianceReportSnapshot",
)  # fmt: skip
TEMPLATE_MODEL = "consent.ConsentTemplate"
CONSENT_MODEL = "consent.ConsentRecord"


def _unique_keys(model) -> list[list[str]]:
    """The columns of the primary key and of every unconditional unique key of a model."""
    meta = model._meta
    keys = [[meta.pk.column]]
    keys += [[field.column] for field in meta.local_concrete_fields if field.unique and not field.primary_key]
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and constraint.fields and constraint.condition is None:
            keys.append([meta.get_field(name).column for name in constraint.fields])
    keys += [[meta.get_field(name).column for name in together] for together in meta.unique_together]
    return keys


def _collides(model) -> str:
    """SQL (for a BEFORE INSERT trigger): the new row would collide with an existing one on some unique key."""
    table = model._meta.db_table
    tests = [
        f"EXISTS (SELECT 1 FROM {table} WHERE {' AND '.join(f'{column} = NEW.{column}' for column in key)})"
        for key in _unique_keys(model)
    ]
    return " OR ".join(tests)


def _template_condition() -> tuple[str, str]:
    """SQL: (the template is used by a consent record, one of its immutable columns changes)."""
    template = apps.get_model(TEMPLATE_MODEL)
    consent = apps.get_model(CONSENT_MODEL)
    used = f"EXISTS (SELECT 1 FROM {consent._meta.db_table} WHERE template_id = OLD.id)"
    columns = ["id", *(template._meta.get_field(name).column for name in template.IMMUTABLE_FIELDS)]
    changes = " OR ".join(f"NEW.{column} IS DISTINCT FROM OLD.{column}" for column in columns)
    return used, changes


# ---- SQLite -------------------------------------------------------------------------------------------------


def _sqlite_refuse(name: str, event: str, when: str, message: str) -> tuple[str, str]:
    condition = f" WHEN {when}" if when else ""
    return name, f"CREATE TRIGGER IF NOT EXISTS {name} {event}{condition} BEGIN SELECT RAISE(ABORT, '{message}'); END;"


def _sqlite(model) -> list[tuple[str, str]]:
    table = model._meta.db_table
    refusals = [
        _sqlite_refuse(f"{table}_no_update", f"BEFORE UPDATE ON {table}", "", f"{table} is append-only: UPDATE refused"),
        _sqlite_refuse(f"{table}_no_delete", f"BEFORE DELETE ON {table}", "", f"{table} is append-only: DELETE refused"),
        _sqlite_refuse(f"{table}_no_replace", f"BEFORE INSERT ON {table}", _collides(model),
                       f"{table} is append-only: REPLACE of an existing row refused"),
    ]  # fmt: skip
    return refusals


def _sqlite_template(model) -> list[tuple[str, str]]:
    table = model._meta.db_table
    used, changes = _template_condition()
    message = f"{table}: a template used for consent is append-only"
    sqlite_changes = changes.replace("IS DISTINCT FROM", "IS NOT")
    return [
        _sqlite_refuse(f"{table}_no_update", f"BEFORE UPDATE ON {table}", f"{used} AND ({sqlite_changes})", f"{message}: UPDATE refused"),
        _sqlite_refuse(f"{table}_no_delete", f"BEFORE DELETE ON {table}", used, f"{message}: DELETE refused"),
        # Colliding with any template, used or not: a plain INSERT would fail there anyway, and REPLACE must not
        # swap a used template's row for another.
        _sqlite_refuse(f"{table}_no_replace", f"BEFORE INSERT ON {table}", _collides(model),
                       f"{message}: REPLACE of an existing row refused"),
    ]  # fmt: skip


# ---- PostgreSQL ---------------------------------------------------------------------------------------------

REFUSE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END; $$;"
)


def _postgresql(model) -> list[tuple[str, str]]:
    table = model._meta.db_table
    return [
        (f"{table}_no_update_delete", f"CREATE OR REPLACE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                                      "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change();"),
        (f"{table}_no_truncate", f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change();"),
    ]  # fmt: skip


def _postgresql_template(model) -> list[tuple[str, str]]:
    table = model._meta.db_table
    used, changes = _template_condition()
    guard = (
        "CREATE OR REPLACE FUNCTION consent_template_used_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'DELETE' AND {used} THEN "
        "RAISE EXCEPTION '% : a template used for consent is append-only: % refused', TG_TABLE_NAME, TG_OP; END IF; "
        f"IF TG_OP = 'UPDATE' AND {used} AND ({changes}) THEN "
        "RAISE EXCEPTION '% : a template used for consent is append-only: % refused', TG_TABLE_NAME, TG_OP; END IF; "
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END; $$;"
    )
    return [
        ("consent_template_used_guard", guard),
        (f"{table}_no_update_delete", f"CREATE OR REPLACE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                                      "FOR EACH ROW EXECUTE FUNCTION consent_template_used_guard();"),
        (f"{table}_no_truncate", f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change();"),
    ]  # fmt: skip


# ---- installing -----------------------------------------------------------------------------------------------


def _models_present(connection) -> list:
    """The protected models whose tables exist (a migration part-way through may not have made them all yet)."""
    existing = set(connection.introspection.table_names())
    models = [apps.get_model(label) for label in (*APPEND_ONLY_MODELS, TEMPLATE_MODEL)]
    present = [model for model in models if model._meta.db_table in existing]
    consent_table = apps.get_model(CONSENT_MODEL)._meta.db_table
    # The template's trigger asks about consent records: it waits for their table.
    return [m for m in present if m._meta.label != TEMPLATE_MODEL or consent_table in existing]


def statements(connection) -> list[tuple[str, str]]:
    """(trigger name, CREATE statement) for every protected table present, for this connection's database."""
    vendor = connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise RuntimeError(f"No append-only triggers for database vendor {vendor!r}.")
    result = [] if vendor == "sqlite" else [("refuse_append_only_change", REFUSE_FUNCTION)]
    for model in _models_present(connection):
        template = model._meta.label == TEMPLATE_MODEL
        if vendor == "sqlite":
            result += _sqlite_template(model) if template else _sqlite(model)
        else:
            result += _postgresql_template(model) if template else _postgresql(model)
    return result


def install(connection) -> None:
    """Install every append-only trigger (idempotent: each is created if missing or replaced)."""
    with connection.cursor() as cursor:
        for name, sql in statements(connection):
            if connection.vendor == "sqlite" and sql.startswith("CREATE TRIGGER"):
                # SQLite has no CREATE OR REPLACE TRIGGER: dropped first, so a changed definition takes effect.
                cursor.execute(f"DROP TRIGGER IF EXISTS {name};")
            cursor.execute(sql)


def remove(connection) -> None:
    """Drop every append-only trigger: what an insider with the database could do (the tests do it to tamper)."""
    with connection.cursor() as cursor:
        for model in _models_present(connection):
            table = model._meta.db_table
            if connection.vendor == "sqlite":
                for suffix in ("no_update", "no_delete", "no_replace"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix};")
            else:
                for suffix in ("no_update_delete", "no_truncate"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix} ON {table};")


def install_after_migrate(sender, using="default", **kwargs) -> None:
    """post_migrate: put the triggers back (SQLite drops them whenever a migration rebuilds a table)."""
    connection = connections[using]
    if connection.vendor in ("sqlite", "postgresql"):
        install(connection)
