"""Walk the access log's hash chains and print what a DPO or auditor needs to publish or act on."""

import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from colocation.models import Organisation
from consent.access.log import check_published_heads, verify_chain

_HEAD_HASH = re.compile(r"^[0-9a-f]{64}$")
# Exit statuses: a problem with the log itself, and a head file with lines that say nothing about it.
TAMPERED, UNUSABLE_HEADS = 2, 1


class Command(BaseCommand):
    help = (
        "Verify the access log's hash chains in constant memory, and each chain head's signature by the log key. "
        "Prints how many events were checked, the head of each chain, and the first event that does not match. "
        "--against takes a file written by publish_access_log_heads (every line is checked) or one head hash. "
        "Exits 2 if the log has been changed, 1 if only the head file has lines that are malformed or not signed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organisation", type=int, action="append", metavar="ID",
                            help="only this organisation's chain (repeat for more); default every chain")  # fmt: skip
        parser.add_argument(
            "--against", metavar="FILE_OR_HASH",
            help="a head file from publish_access_log_heads, or a head hash published earlier, that must still be in the chain",
        )  # fmt: skip

    def handle(self, *args, organisation=None, against=None, **options):
        head_file = Path(against) if against is not None and not _HEAD_HASH.match(against) else None
        if head_file is not None and not head_file.is_file():
            raise CommandError(
                "--against takes a head file written by publish_access_log_heads, or a head hash as published: "
                "64 lowercase hexadecimal characters."
            )
        if organisation:
            known = set(Organisation.objects.filter(pk__in=organisation).values_list("pk", flat=True))
            unknown = sorted(set(organisation) - known)
            if unknown:
                raise CommandError(f"No organisation with id {', '.join(map(str, unknown))}; give the id of an existing one.")
        chains = sorted(set(organisation)) if organisation else None
        result = verify_chain(organisation_ids=chains, against=against if head_file is None else None)
        self.stdout.write(f"events checked: {result.events_checked}")
        for chain_id, head in sorted(result.heads.items()):
            self.stdout.write(f"organisation {chain_id}: head seq {head['seq']} hash {head['head_hash']}")
        if against is not None and head_file is None:
            self.stdout.write(f"published head {against}: {'found in the chain' if result.against_found else 'NOT FOUND'}")
        if result.verified is False and result.against_found is not False:
            mismatch = result.first_mismatch
            raise CommandError(
                f"first mismatch: event {mismatch['event_id']} (organisation {mismatch['chain']}, seq {mismatch['seq']}): "
                f"{mismatch['problem']}",
                returncode=TAMPERED,
            )
        if head_file is not None:
            self._check_head_file(head_file, chains)
        elif not result.verified:
            raise CommandError(f"first mismatch: {result.first_mismatch['problem']}", returncode=TAMPERED)
        self.stdout.write(self.style.SUCCESS("verified: the access log is intact"))

    def _check_head_file(self, head_file: Path, chains: list[int] | None) -> None:
        """Every line of a published head file: still in its chain, or named with what is wrong with it."""
        with head_file.open(encoding="utf-8", errors="replace") as lines:
            checks = [c for c in check_published_heads(lines) if chains is None or c.chain is None or c.chain in chains]
        for check in checks:
            self.stdout.write(f"{head_file.name} line {check.line}: {check.verdict.upper()}: {check.detail}")
        rewritten = [c for c in checks if c.rewritten]
        if rewritten:
            first = rewritten[0]
            raise CommandError(f"{head_file.name} line {first.line}: {first.detail}", returncode=TAMPERED)
        unusable = [c for c in checks if c.verdict != "found"]
        if unusable:
            raise CommandError(
                f"{head_file.name}: {len(unusable)} line(s) are not heads this service signed (first: line {unusable[0].line}, "
                f"{unusable[0].verdict}); the log itself verifies, and every signed head in the file is still in its chain.",
                returncode=UNUSABLE_HEADS,
            )
        if not checks:
            raise CommandError(f"{head_file.name} holds no published heads.", returncode=UNUSABLE_HEADS)
        self.stdout.write(f"{head_file.name}: all {len(checks)} published head(s) still in their chains")
