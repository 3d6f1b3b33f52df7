"""Walk the access log's hash chains and print what a DPO or auditor needs to publish or act on."""

import re

from django.core.management.base import BaseCommand, CommandError

from colocation.models import Organisation
from consent.access.log import verify_chain

_HEAD_HASH = re.compile(r"^[0-9a-f]{64}$")


class Command(BaseCommand):
    help = (
        "Verify the access log's hash chains in constant memory. Prints how many events were checked, the head "
        "hash of each chain (publish them: a later run --against one catches a chain rewritten since), and the "
        "first event that does not match. Exits non-zero on a mismatch."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organisation", type=int, action="append", metavar="ID",
                            help="only this organisation's chain (repeat for more); default every chain")  # fmt: skip
        parser.add_argument(
            "--against", metavar="HEAD_HASH", help="a head hash published earlier that must still be in the chain"
        )

    def handle(self, *args, organisation=None, against=None, **options):
        if against is not None and not _HEAD_HASH.match(against):
            raise CommandError("--against takes a head hash as published: 64 lowercase hexadecimal characters.")
        if organisation:
            known = set(Organisation.objects.filter(pk__in=organisation).values_list("pk", flat=True))
            unknown = sorted(set(organisation) - known)
            if unknown:
                raise CommandError(f"No organisation with id {', '.join(map(str, unknown))}; give the id of an existing one.")
        result = verify_chain(organisation_ids=sorted(set(organisation)) if organisation else None, against=against)
        self.stdout.write(f"events checked: {result.events_checked}")
        for chain_id, head in sorted(result.heads.items()):
            self.stdout.write(f"organisation {chain_id}: head seq {head['seq']} hash {head['head_hash']}")
        if against is not None:
            self.stdout.write(f"published head {against}: {'found in the chain' if result.against_found else 'NOT FOUND'}")
        if not result.verified:
            mismatch = result.first_mismatch
            raise CommandError(
                f"first mismatch: event {mismatch['event_id']} (organisation {mismatch['chain']}, seq {mismatch['seq']}): "
                f"{mismatch['problem']}",
                returncode=2,
            )
        self.stdout.write(self.style.SUCCESS("verified: the access log is intact"))
