"""Recount every user's caseload from guardian's grants and fail on any difference from the stored entries."""

from django.core.management.base import BaseCommand, CommandError

from consent.access.caseload import missing_entries, unjustified_entries

SHOWN = 20


class Command(BaseCommand):
    help = (
        "Compare each user's caseload (the entries the firewall lists referrals from) with the object-permission "
        "rows themselves, direct and through groups; exit non-zero naming the entries missing or not justified."
    )

    def handle(self, *args, **options):
        # The comparison runs in the database: a count and the first few of each kind.
        direct, through_groups = missing_entries()
        extra = unjustified_entries()
        found = {
            "granted directly but missing": [(row.user_id, row.content_object_id) for row in direct[:SHOWN]],
            "granted through a group but missing": [
                (user_id, referral_id)
                for user_id, referral_id in through_groups.values_list("group__user", "content_object_id")[:SHOWN]
            ],
            "not justified by any grant (or copies differ from the referral)": [
                (row.user_id, row.referral_id) for row in extra[:SHOWN]
            ],
        }
        counts = {"granted directly but missing": direct.count(), "granted through a group but missing": through_groups.count(),
                  "not justified by any grant (or copies differ from the referral)": extra.count()}  # fmt: skip
        problems = [
            f"{counts[kind]} {kind}: " + ", ".join(f"user {user} referral {referral}" for user, referral in rows)
            for kind, rows in found.items()
            if counts[kind]
        ]
        if problems:
            raise CommandError(
                "The caseload differs from the grants. "
                + "; ".join(problems)
                + ". Nothing was changed; find what wrote grants or memberships without the caseload."
            )
        self.stdout.write(self.style.SUCCESS("Every user's caseload matches the grants."))
