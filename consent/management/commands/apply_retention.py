"""Erase client identifiers past the retention period (consent/retention.py has the policy).

    python manage.py apply_retention --dry-run        # what would be erased; writes nothing
    python manage.py apply_retention --apply [--actor USERNAME]

The pseudonymous access log is left whole; each erasure is logged on the provider's chain, by the named
account (the DPO who runs it) or, unattended, as the apply_retention job.
"""

from django.core.management.base import BaseCommand, CommandError

from colocation.models import User
from consent.retention import apply_retention


class Command(BaseCommand):
    help = "Erase client identifiers (local reference, NHS number, year of birth) past the retention period."

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--dry-run", action="store_true", help="Count the clients past the period; change nothing.")
        mode.add_argument("--apply", action="store_true", help="Erase their identifiers and log each erasure.")
        parser.add_argument("--actor", help="Username of the person running it, for the access log (default: the job).")

    def handle(self, *args, dry_run=False, apply=False, actor=None, **options):
        user = None
        if actor:
            user = User.objects.filter(username=actor, is_active=True).first()
            if user is None:
                raise CommandError(f"No active account {actor!r}; give the username of the person running the erasure.")
        result = apply_retention(actor=user, dry_run=dry_run)
        verb = "would erase" if result.dry_run else "erased"
        self.stdout.write(f"Policy: {result.policy.describe()}; last contact before {result.cutoff.isoformat()}.")
        for provider_id, count in sorted(result.by_provider.items()):
            self.stdout.write(f"  provider {provider_id}: {verb} the identifiers of {count} client(s)")
        self.stdout.write(
            f"{'Dry run: ' if result.dry_run else ''}{verb} the identifiers of {result.erased} client(s)"
            + ("" if result.dry_run else "; one access event each on the provider's chain; the log is otherwise untouched.")
        )
