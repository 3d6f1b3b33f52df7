"""Database triggers that keep a benefits agency a benefits agency, for SQLite and PostgreSQL.

The models refuse these changes with a clear message first (what the admin and every save run); the
database refuses them again for whatever reaches it another way (QuerySet.update, raw SQL, a bulk insert):

- an organisation of the benefits_agency kind keeps that kind; an organisation with staff or sites does
  not become one;
- an account of a benefits agency is a work coach and never staff or superuser; once one (the user's
  benefits_agency_account mark, set here when its profile is saved and never cleared), its profile cannot be
  moved to another organisation or role, nor a new one made elsewhere;
- it joins no group and holds no model permission.
"""

AGENCY = "'benefits_agency'"
ORGANISATION = "colocation_organisation"
PROFILE = "colocation_staffprofile"
USER = "colocation_user"
MEMBERSHIP_TABLES = ("colocation_user_groups", "colocation_user_user_permissions")

STAYS = "a benefits agency stays a benefits agency"
NOT_BECOME = "an organisation with staff or sites cannot become a benefits agency"
WORK_COACH_ONLY = "an account of a benefits agency is a work coach, never staff or superuser"
NOT_MOVED = "an account of a benefits agency cannot be moved to another organisation or role"
MARK_STAYS = "the benefits-agency mark of an account cannot be removed"
NO_MEMBERSHIP = "an account of a benefits agency joins no group and holds no permission"


def _kind_of(organisation_id: str) -> str:
    return f"(SELECT kind FROM {ORGANISATION} WHERE id = {organisation_id})"


def _agency_account(user_id: str) -> str:
    """Whether the user is marked, or has a profile at a benefits agency (SQL, true or false)."""
    return (
        f"(EXISTS (SELECT 1 FROM {USER} WHERE id = {user_id} AND benefits_agency_account)"
        f" OR EXISTS (SELECT 1 FROM {PROFILE} p JOIN {ORGANISATION} o ON o.id = p.organisation_id"
        f" WHERE p.user_id = {user_id} AND o.kind = {AGENCY}))"
    )


def _staff(user_id: str) -> str:
    return f"EXISTS (SELECT 1 FROM {USER} WHERE id = {user_id} AND (is_staff OR is_superuser))"


def _has_people_or_sites(organisation_id: str) -> str:
    return (
        f"(EXISTS (SELECT 1 FROM {PROFILE} WHERE organisation_id = {organisation_id})"
        f" OR EXISTS (SELECT 1 FROM colocation_site WHERE provider_id = {organisation_id}))"
    )


def _profile_refused_at_agency() -> str:
    return f"({_kind_of('NEW.organisation_id')} = {AGENCY} AND (NEW.role <> 'work_coach' OR {_staff('NEW.user_id')}))"


def _marked(user_id: str) -> str:
    return f"EXISTS (SELECT 1 FROM {USER} WHERE id = {user_id} AND benefits_agency_account)"


# ---- SQLite -------------------------------------------------------------------------------------------------


def _sqlite_refuse(name: str, when: str, message: str, event: str) -> str:
    return f"CREATE TRIGGER {name} {event} WHEN {when} BEGIN SELECT RAISE(ABORT, '{message}'); END;"


def _sqlite() -> list[tuple[str, str]]:
    """(name, CREATE statement) pairs."""
    triggers = [
        ("colocation_org_kind_stays", f"BEFORE UPDATE OF kind ON {ORGANISATION}",
         f"OLD.kind = {AGENCY} AND NEW.kind <> {AGENCY}", STAYS),
        ("colocation_org_kind_becomes", f"BEFORE UPDATE OF kind ON {ORGANISATION}",
         f"OLD.kind <> {AGENCY} AND NEW.kind = {AGENCY} AND {_has_people_or_sites('NEW.id')}", NOT_BECOME),
        ("colocation_profile_insert_agency", f"BEFORE INSERT ON {PROFILE}", _profile_refused_at_agency(), WORK_COACH_ONLY),
        ("colocation_profile_update_agency", f"BEFORE UPDATE ON {PROFILE}", _profile_refused_at_agency(), WORK_COACH_ONLY),
        ("colocation_profile_insert_marked", f"BEFORE INSERT ON {PROFILE}",
         f"{_marked('NEW.user_id')} AND {_kind_of('NEW.organisation_id')} <> {AGENCY}", NOT_MOVED),
        ("colocation_profile_update_moved", f"BEFORE UPDATE ON {PROFILE}",
         f"({_kind_of('OLD.organisation_id')} = {AGENCY} OR {_marked('OLD.user_id')} OR {_marked('NEW.user_id')})"
         " AND (NEW.organisation_id <> OLD.organisation_id OR NEW.role <> OLD.role OR NEW.user_id <> OLD.user_id)",
         NOT_MOVED),
        ("colocation_user_insert_flags", f"BEFORE INSERT ON {USER}",
         "NEW.benefits_agency_account AND (NEW.is_staff OR NEW.is_superuser)", WORK_COACH_ONLY),
        ("colocation_user_update_flags", f"BEFORE UPDATE OF is_staff, is_superuser, benefits_agency_account ON {USER}",
         f"(NEW.is_staff OR NEW.is_superuser) AND (NEW.benefits_agency_account OR {_agency_account('NEW.id')})",
         WORK_COACH_ONLY),
        ("colocation_user_mark_stays", f"BEFORE UPDATE OF benefits_agency_account ON {USER}",
         "OLD.benefits_agency_account AND NOT NEW.benefits_agency_account", MARK_STAYS),
    ]  # fmt: skip
    triggers += [
        (f"{table}_agency", f"BEFORE INSERT ON {table}", _agency_account("NEW.user_id"), NO_MEMBERSHIP)
        for table in MEMBERSHIP_TABLES
    ]
    statements = [(name, _sqlite_refuse(name, when, message, event)) for name, event, when, message in triggers]
    for event in ("INSERT", "UPDATE"):
        name = f"colocation_profile_{event.lower()}_mark"
        statements.append(
            (name, f"CREATE TRIGGER {name} AFTER {event} ON {PROFILE} WHEN {_kind_of('NEW.organisation_id')} = {AGENCY} "
                   f"BEGIN UPDATE {USER} SET benefits_agency_account = 1 WHERE id = NEW.user_id; END;")
        )  # fmt: skip
    return statements


# ---- PostgreSQL ---------------------------------------------------------------------------------------------


def _plpgsql(name: str, body: str) -> str:
    return f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END; $$;"


def _raise(message: str) -> str:
    return f"RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';"


def _postgresql() -> list[tuple[str, str, list[str]]]:
    """(trigger name, table, [function, trigger]) triples."""
    organisation = _plpgsql(
        "colocation_organisation_guard",
        f"IF OLD.kind = {AGENCY} AND NEW.kind <> {AGENCY} THEN {_raise(STAYS)} END IF; "
        f"IF OLD.kind <> {AGENCY} AND NEW.kind = {AGENCY} AND {_has_people_or_sites('NEW.id')} THEN {_raise(NOT_BECOME)} END IF; "
        "RETURN NEW;",
    )
    profile = _plpgsql(
        "colocation_profile_guard",
        f"IF {_profile_refused_at_agency()} THEN {_raise(WORK_COACH_ONLY)} END IF; "
        f"IF TG_OP = 'INSERT' AND {_marked('NEW.user_id')} AND {_kind_of('NEW.organisation_id')} <> {AGENCY} THEN "
        f"{_raise(NOT_MOVED)} END IF; "
        f"IF TG_OP = 'UPDATE' AND ({_kind_of('OLD.organisation_id')} = {AGENCY} OR {_marked('OLD.user_id')} "
        f"OR {_marked('NEW.user_id')}) AND (NEW.organisation_id <> OLD.organisation_id OR NEW.role <> OLD.role "
        f"OR NEW.user_id <> OLD.user_id) THEN {_raise(NOT_MOVED)} END IF; "
        "RETURN NEW;",
    )
    mark = _plpgsql(
        "colocation_profile_mark",
        f"IF {_kind_of('NEW.organisation_id')} = {AGENCY} THEN "
        f"UPDATE {USER} SET benefits_agency_account = true WHERE id = NEW.user_id AND NOT benefits_agency_account; "
        "END IF; RETURN NEW;",
    )
    user = _plpgsql(
        "colocation_user_guard",
        f"IF TG_OP = 'UPDATE' AND OLD.benefits_agency_account AND NOT NEW.benefits_agency_account THEN {_raise(MARK_STAYS)} END IF; "
        f"IF (NEW.is_staff OR NEW.is_superuser) AND (NEW.benefits_agency_account OR {_agency_account('NEW.id')}) THEN "
        f"{_raise(WORK_COACH_ONLY)} END IF; RETURN NEW;",
    )
    membership = _plpgsql(
        "colocation_membership_guard", f"IF {_agency_account('NEW.user_id')} THEN {_raise(NO_MEMBERSHIP)} END IF; RETURN NEW;"
    )
    return [
        ("colocation_organisation_guard", ORGANISATION,
         [organisation, f"CREATE TRIGGER colocation_organisation_guard BEFORE UPDATE ON {ORGANISATION} "
                        "FOR EACH ROW EXECUTE FUNCTION colocation_organisation_guard();"]),
        ("colocation_profile_guard", PROFILE,
         [profile, f"CREATE TRIGGER colocation_profile_guard BEFORE INSERT OR UPDATE ON {PROFILE} "
                   "FOR EACH ROW EXECUTE FUNCTION colocation_profile_guard();"]),
        ("colocation_profile_mark", PROFILE,
         [mark, f"CREATE TRIGGER colocation_profile_mark AFTER INSERT OR UPDATE ON {PROFILE} "
                "FOR EACH ROW EXECUTE FUNCTION colocation_profile_mark();"]),
        ("colocation_user_guard", USER,
         [user, f"CREATE TRIGGER colocation_user_guard BEFORE INSERT OR UPDATE OF is_staff, is_superuser, benefits_agency_account ON {USER} "
                "FOR EACH ROW EXECUTE FUNCTION colocation_user_guard();"]),
    ] + [
        (f"{table}_agency", table,
         [membership, f"CREATE TRIGGER {table}_agency BEFORE INSERT ON {table} "
                      "FOR EACH ROW EXECUTE FUNCTION colocation_membership_guard();"])
        for table in MEMBERSHIP_TABLES
    ]  # fmt: skip


def install(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for _, statement in _sqlite():
                cursor.execute(statement)
        elif connection.vendor == "postgresql":
            for _, _, statements in _postgresql():
                for statement in statements:
                    cursor.execute(statement)
        else:
            raise RuntimeError(f"No benefits-agency triggers for database vendor {connection.vendor!r}.")


def remove(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for name, _ in _sqlite():
                cursor.execute(f"DROP TRIGGER IF EXISTS {name};")
        elif connection.vendor == "postgresql":
            for name, table, _ in _postgresql():
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table};")
