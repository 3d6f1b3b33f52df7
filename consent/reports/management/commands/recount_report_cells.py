"""Recount every pilot's report lattice cells from the records and fail on any difference from the kept cells."""

from django.core.management.base import BaseCommand, CommandError

from colocation.models import Pilot
from consent.reports.cells import cell_differences, rebuild_cells

SHOWN = 20


class Command(BaseCommand):
    help = (
        "Recount the compliance report's lattice cells (per pilot, site and month received) from the referrals and "
        "their records; exit non-zero naming the cells whose kept count or key sum differs. Differing cells are left "
        "as they are (unless --rebuild); a pilot whose dates or sites changed since its cells were counted is counted "
        "first, as its next report would."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="after naming the differences, count the pilots that differ again from the records",
        )

    def handle(self, *args, **options):
        differences = []
        pilots = list(Pilot.objects.order_by("pk"))
        for pilot in pilots:
            differences += [(pilot, *difference) for difference in cell_differences(pilot)]
        if differences:
            if options["rebuild"]:
                for pilot in {pilot for pilot, *_ in differences}:
                    rebuild_cells(pilot)
            shown = [
                f"pilot {pilot.pk} site {site_id} {month:%Y-%m} {path}: kept {kept or [0, 0]}, counted {counted or [0, 0]}"
                for pilot, site_id, month, path, kept, counted in differences[:SHOWN]
            ]
            more = f"\n... and {len(differences) - SHOWN} more" if len(differences) > SHOWN else ""
            raise CommandError(
                f"{len(differences)} report cell(s) differ from the records ([count, key sum]):\n"
                + "\n".join(shown)
                + more
                + (
                    "\nThose pilots' cells were counted again from the records."
                    if options["rebuild"]
                    else "\nThe differing cells were left as they are; find what wrote referrals or records around the "
                    "services, then run this command with --rebuild."
                )
            )
        self.stdout.write(self.style.SUCCESS(f"Every report cell of {len(pilots)} pilot(s) matches the records."))
