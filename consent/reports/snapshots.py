"""Freezing a compliance report as a snapshot, and checking later that it is what the system produced."""

import hashlib
import json
import subprocess  # noqa: S404 - only to ask git for the code version, with a fixed argument list
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from colocation.models import Pilot, User
from consent.access.log import chain_heads, verify_chain
from consent.reports.models import ComplianceReportSnapshot
from consent.reports.periods import Period, period_of_pilot
from consent.reports.report import compliance_report


def canonical_json(document: dict) -> str:
    """The text a snapshot's SHA-256 is taken over: sorted keys, no spaces, UTF-8, so anyone can recompute it."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """settings.CODE_VERSION if set (a deployment sets it), else `git describe` of the checkout, else 'unknown'."""
    if settings.CODE_VERSION:
        return settings.CODE_VERSION
    try:
        described = subprocess.run(  # noqa: S603 - fixed argument list, no shell, no user input
            ["git", "describe", "--always", "--dirty", "--tags"],  # noqa: S607 - git from PATH is what describe means
            cwd=Path(settings.BASE_DIR),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip()[:100] or "unknown"


@transaction.atomic
def freeze_report(*, pilot: Pilot, period: Period | str, author: User) -> ComplianceReportSnapshot:
    """Store the published report of a period unchanged, with its SHA-256, author, time, code version and log heads.

    The heads of the access-log chains of the pilot's providers are published with it, so a log rewritten
    later from some point on is caught against them (verify_snapshot checks they are still in the chains).
    """
    period = period_of_pilot(pilot, period)
    report = compliance_report(pilot, period)
    provider_ids = sorted(set(pilot.sites.values_list("provider_id", flat=True)))
    now = timezone.now()
    document = {
        "report": report,
        "frozen_at": now.isoformat(),
        "frozen_by": author.get_username(),
        "code_version": code_version(),
        "access_log_heads": chain_heads(provider_ids),
    }
    content = canonical_json(document)
    snapshot = ComplianceReportSnapshot(
        pilot=pilot,
        period_label=period.label,
        period_start=period.start,
        period_end=period.end,
        content=content,
        sha256=sha256_of(content),
        created_by=author,
        created_at=now,
        code_version=document["code_version"],
        chain_heads=document["access_log_heads"],
    )
    snapshot.full_clean()
    snapshot.save()
    return snapshot


def snapshot_document(snapshot: ComplianceReportSnapshot) -> dict:
    """The frozen document as stored (the report and what was recorded with it)."""
    return json.loads(snapshot.content)


def verify_snapshot(snapshot: ComplianceReportSnapshot) -> dict:
    """Recompute the SHA-256 of what is stored, and check the published log heads are still in their chains.

    `verified` is about the snapshot itself: its stored content still hashes to its stored SHA-256.
    """
    computed = sha256_of(snapshot.content)
    heads = {}
    for organisation_id, head in sorted((snapshot.chain_heads or {}).items()):
        result = verify_chain(organisation_ids=[int(organisation_id)], against=head["head_hash"])
        heads[organisation_id] = {"head_hash": head["head_hash"], "still_in_chain": bool(result.against_found)}
    return {
        "id": snapshot.pk,
        "verified": computed == snapshot.sha256,
        "sha256": snapshot.sha256,
        "sha256_recomputed": computed,
        "access_log_heads": heads,
    }
