"""Recount every referral's voluntariness flags from its records and fail on any difference from the stored rows."""

from django.core.management.base import BaseCommand, CommandError

from consent.voluntariness_flags import flag_differences

SHOWN = 20


class Command(BaseCommand):
    help = (
        "Recount the voluntariness flags the compliance report reads from the consent records, checks, withdrawals "
        "and declines themselves; exit non-zero naming the referrals whose stored row is missing or differs."
    )

    def handle(self, *args, **options):
        differences = flag_differences()
        # One query for the count and one for the first few: the comparison runs in the database.
        count = differences.count()
        if count:
            shown = [str(pk) for pk in differences.values_list("pk", flat=True)[:SHOWN]]
            more = f" and {count - len(shown)} more" if count > len(shown) else ""
            raise CommandError(
                f"{count} referral(s) whose voluntariness flags differ from their records: {', '.join(shown)}{more}. "
                "Nothing was changed; find what wrote records without refreshing the flags."
            )
        self.stdout.write(self.style.SUCCESS("Every referral's voluntariness flags match its records."))
