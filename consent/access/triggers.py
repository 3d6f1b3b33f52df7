"""Database triggers that make the access-log tables append-only, for SQLite and PostgreSQL."""

APPEND_ONLY_TABLES = ("access_accessevent", "access_alertdisposition")


def _sqlite(table: str) -> tuple[list[str], list[str]]:
    create = [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END;"
        for op in ("UPDATE", "DELETE")
    ]
    drop = [f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()};" for op in ("UPDATE", "DELETE")]
    return create, drop


def _postgresql(table: str) -> tuple[list[str], list[str]]:
    create = [
        "CREATE OR REPLACE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END; $$;",
        f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change();",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change();",
    ]
    drop = [
        f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table};",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};",
    ]
    return create, drop


def statements(vendor: str, *, install: bool) -> list[str]:
    builder = {"sqlite": _sqlite, "postgresql": _postgresql}.get(vendor)
    if builder is None:
        raise RuntimeError(f"No append-only triggers for database vendor {vendor!r}.")
    result = []
    for table in APPEND_ONLY_TABLES:
        create, drop = builder(table)
        result.extend(create if install else drop)
    return result


def install(connection) -> None:
    with connection.cursor() as cursor:
        for sql in statements(connection.vendor, install=True):
            cursor.execute(sql)


def remove(connection) -> None:
    with connection.cursor() as cursor:
        for sql in statements(connection.vendor, install=False):
            cursor.execute(sql)
