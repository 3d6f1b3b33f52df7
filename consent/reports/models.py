"""Frozen compliance reports: stored unchanged with the SHA-256 that lets a professional body check them."""

from django.conf import settings
from django.db import models

from colocation.models import Pilot


class SnapshotIsFrozen(Exception):
    """Raised on any attempt to change or delete a snapshot in place."""


class ComplianceReportSnapshot(models.Model):
    """A published report as it was sent, with who froze it, when, from which code and the log heads then."""

    pilot = models.ForeignKey(Pilot, on_delete=models.PROTECT, related_name="compliance_snapshots")
    period_label = models.CharField(max_length=32)
    period_start = models.DateField()
    period_end = models.DateField()
    # The canonical JSON text of the document (report, author, time, code version, chain heads) exactly as
    # hashed: kept as text so verification hashes the very bytes that were frozen.
    content = models.TextField()
    sha256 = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    code_version = models.CharField(max_length=100)
    chain_heads = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["pilot", "-created_at"], name="snapshot_pilot_time")]

    def __str__(self):
        return f"{self.pilot} {self.period_label} snapshot {self.pk}"

    def save(self, *args, **kwargs):
        # Frozen means frozen: whatever code path holds a snapshot, an in-place change is refused.
        if not self._state.adding:
            raise SnapshotIsFrozen(f"Snapshot {self.pk} is frozen: freeze a new one instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise SnapshotIsFrozen(f"Snapshot {self.pk} is frozen and cannot be deleted.")


class KeptLattice(models.Model):
    """The pilot definition (dates and sites) a pilot's kept lattice cells (consent.models.LatticeCell) were
    counted for: a report finding the pilot changed since counts them again (consent.reports.cells)."""

    pilot = models.OneToOneField(Pilot, on_delete=models.CASCADE, primary_key=True, related_name="+")
    starts_on = models.DateField()
    ends_on = models.DateField()
    # The pilot's site ids, sorted and comma-separated: compared whole, never queried into.
    site_ids = models.TextField()
    counted_at = models.DateTimeField()

    def __str__(self):
        return f"lattice of pilot {self.pilot_id} counted at {self.counted_at:%Y-%m-%d %H:%M}"
