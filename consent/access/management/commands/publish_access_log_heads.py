"""Write each access-log chain's signed head as one JSON line, for the DPO to archive outside the database."""

from django.core.management.base import BaseCommand, CommandError

from colocation.models import Organisation
from consent.access.log import published_heads, verify_chain


class Command(BaseCommand):
    help = (
        "Print (or append to --output) each chain's signed head as one JSON line: chain, sequence, hash, time, the "
        "log key's Ed25519 signature and key id. Archive the lines somewhere the database's administrators cannot "
        "write (a DPO's mailbox, a WORM bucket); `verify_access_log --against FILE` later checks every line still "
        "holds. Refuses to publish a log that does not verify."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organisation", type=int, action="append", metavar="ID",
                            help="only this organisation's chain (repeat for more); default every chain")  # fmt: skip
        parser.add_argument("--output", metavar="FILE", help="append the lines to this file instead of printing them")

    def handle(self, *args, organisation=None, output=None, **options):
        chains = sorted(set(organisation)) if organisation else None
        if chains:
            unknown = sorted(set(chains) - set(Organisation.objects.filter(pk__in=chains).values_list("pk", flat=True)))
            if unknown:
                raise CommandError(f"No organisation with id {', '.join(map(str, unknown))}; give the id of an existing one.")
        # Read before verifying: a chain only grows, so every head read here is inside what is verified next.
        lines = published_heads(chains)
        # Resumed from the last full verification: a head is published only for a log that still verifies.
        result = verify_chain(organisation_ids=chains, resume=True)
        if not result.verified:
            mismatch = result.first_mismatch
            raise CommandError(
                f"not published: the log does not verify (organisation {mismatch['chain']}, seq {mismatch['seq']}: "
                f"{mismatch['problem']})",
                returncode=2,
            )
        if output:
            with open(output, "a", encoding="utf-8") as archive:
                archive.writelines(f"{line}\n" for line in lines)
            self.stderr.write(f"{len(lines)} signed head(s) appended to {output}")
        else:
            for line in lines:
                self.stdout.write(line)
