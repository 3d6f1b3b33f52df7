"""Each user's caseload (CaseloadEntry): guardian's grants on referrals, direct and through groups, kept in step.

Guardian's permission rows are the source of truth. A user's entry for (codename, referral) exists exactly when the
user holds that permission on that referral directly or through a group they belong to, and carries the referral's
provider and list order. consent.access.signals calls these functions on every grant, revoke and membership change,
inside the transaction that makes it (guardian's saves and deletes, bulk_create and the membership manager are all
atomic), so a caseload never disagrees with the grants a committed transaction left. The firewall reads only the
entries (consent.access.firewall.referrals_visible_to); `python manage.py recount_caseload` compares them with the
grants and fails on any difference.
"""

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.constants import OnConflict

from consent.access.models import CaseloadEntry, ReferralGroupObjectPermission, ReferralUserObjectPermission

ENTRY_COLUMNS = ("user_id", "codename", "referral_id", "provider_id", "referred_on", "created_at")
# The same values read from a grant row: the referral's, through the grant's foreign key.
_ON_REFERRAL = ("permission__codename", "content_object_id", "content_object__provider_id",
                "content_object__referred_on", "content_object__created_at")  # fmt: skip


def _direct(*, users=None, referrals=None) -> QuerySet:
    """Entry values from the grants made to users themselves."""
    grants = ReferralUserObjectPermission.objects.order_by()
    if users is not None:
        grants = grants.filter(user_id__in=users)
    if referrals is not None:
        grants = grants.filter(content_object_id__in=referrals)
    return grants.values_list("user_id", *_ON_REFERRAL)


def _through_groups(*, users=None, referrals=None, groups=None) -> QuerySet:
    """Entry values from the grants made to groups, one per member of the group."""
    grants = ReferralGroupObjectPermission.objects.order_by().filter(group__user__isnull=False)
    if users is not None:
        grants = grants.filter(group__user__in=users)
    if referrals is not None:
        grants = grants.filter(content_object_id__in=referrals)
    if groups is not None:
        grants = grants.filter(group_id__in=groups)
    return grants.values_list("group__user", *_ON_REFERRAL)


def _insert(rows: QuerySet) -> None:
    """Add the entries these values describe; one already there is left as it is (the statement is idempotent)."""
    sql, params = rows.query.sql_with_params()
    table = connection.ops.quote_name(CaseloadEntry._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(column) for column in ENTRY_COLUMNS)
    insert = connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)
    suffix = connection.ops.on_conflict_suffix_sql([], OnConflict.IGNORE, [], [])
    with connection.cursor() as cursor:
        # Our own quoted table and columns, and SQL compiled by Django with its parameters apart.
        cursor.execute(f"{insert} {table} ({columns}) {sql} {suffix}", params)  # noqa: S608


def _justified_by(grants: QuerySet, holder: str) -> Exists:
    """A grant of `grants` behind the outer entry, with the entry's copies equal to its referral's."""
    return Exists(
        grants.filter(
            **{holder: OuterRef("user_id")},
            permission__codename=OuterRef("codename"),
            content_object_id=OuterRef("referral_id"),
            content_object__provider_id=OuterRef("provider_id"),
            content_object__referred_on=OuterRef("referred_on"),
            content_object__created_at=OuterRef("created_at"),
        )
    )


def unjustified_entries() -> QuerySet:
    """Entries no grant stands behind (or whose copies differ from their referral): empty when exact."""
    return CaseloadEntry.objects.exclude(_justified_by(ReferralUserObjectPermission.objects.all(), "user_id")).exclude(
        _justified_by(ReferralGroupObjectPermission.objects.all(), "group__user")
    )


def _drop_unjustified(*, users=None, referrals=None) -> None:
    entries = unjustified_entries()
    if users is not None:
        entries = entries.filter(user_id__in=users)
    if referrals is not None:
        entries = entries.filter(referral_id__in=referrals)
    entries.delete()


def _entered(holder: str) -> Exists:
    """The outer grant's entry (for the holder given by `holder`), with its copies equal to the referral's."""
    return Exists(
        CaseloadEntry.objects.filter(
            user_id=OuterRef(holder),
            codename=OuterRef("permission__codename"),
            referral_id=OuterRef("content_object_id"),
            provider_id=OuterRef("content_object__provider_id"),
            referred_on=OuterRef("content_object__referred_on"),
            created_at=OuterRef("content_object__created_at"),
        )
    )


def missing_entries() -> tuple[QuerySet, QuerySet]:
    """The direct grants and the group grants (per member) that have no equal entry: both empty when exact."""
    direct = ReferralUserObjectPermission.objects.exclude(_entered("user_id"))
    through = ReferralGroupObjectPermission.objects.filter(group__user__isnull=False).exclude(_entered("group__user"))
    return direct, through


# ---- kept in step: called by consent.access.signals ---------------------------------------------------------------


def user_granted(user_ids, referral_ids) -> None:
    """Direct grants were written: their entries, one statement."""
    _insert(_direct(users=user_ids, referrals=referral_ids))


def group_granted(group_ids, referral_ids) -> None:
    """Grants to groups were written: an entry for each member, one statement."""
    _insert(_through_groups(groups=group_ids, referrals=referral_ids))


def user_revoked(user_ids, referral_ids) -> None:
    """Direct grants were deleted: their entries go unless a group grant still stands behind them."""
    _drop_unjustified(users=user_ids, referrals=referral_ids)


def group_revoked(referral_ids) -> None:
    """Grants to a group were deleted: every entry on these referrals that nothing else stands behind goes.

    Not limited to the group's members: when the group itself is deleted its memberships may go first.
    """
    _drop_unjustified(referrals=referral_ids)


def memberships_changed(user_ids) -> None:
    """Users joined or left groups: their whole caseloads recounted (two statements)."""
    user_ids = list(user_ids)
    if user_ids:
        _drop_unjustified(users=user_ids)
        _insert(_direct(users=user_ids).union(_through_groups(users=user_ids)))


def rebuild_caseload() -> None:
    """Every entry written again from the grants (the migration's backfill, a benchmark world's load)."""
    CaseloadEntry.objects.all().delete()
    _insert(_direct().union(_through_groups()))
    if connection.vendor == "postgresql":
        # Every row is new: without statistics the planner would not know the list index serves a user's page.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(CaseloadEntry._meta.db_table)}")
