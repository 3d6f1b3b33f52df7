"""Writes about the access log itself: a DPO's decision on an alert."""

from django.core.exceptions import ValidationError
from django.db import transaction

from colocation.models import Organisation
from consent.access import selectors
from consent.access.log import AccessContext, EventDraft, record_access
from consent.access.models import Action, AlertDisposition, Disposition, Outcome


class AlertNotFound(Exception):
    """No alert with that id in the DPO's own organisation's log (another organisation's is not found either)."""


@transaction.atomic
def record_disposition(*, user, event_id: int, disposition: str, note: str) -> AlertDisposition:
    """Record a DPO's decision on one alert of their organisation, as a new append-only row.

    A later decision does not replace an earlier one: both stay, and the newest is the alert's state.
    """
    alert = selectors.alert_for_dpo(user, event_id)
    if alert is None:
        raise AlertNotFound()
    if disposition not in Disposition.values:
        raise ValidationError({"disposition": f"Give one of: {', '.join(Disposition.values)}."})
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say briefly why you decided this; the note is kept with the decision."})
    record = AlertDisposition(event_id=alert.pk, disposition=disposition, note=note, decided_by=user)
    record.full_clean()
    record.save()
    return record


def record_log_export(*, context: AccessContext, organisation_id: int) -> None:
    """Log that the DPO exported their organisation's log, on that organisation's chain (fails closed)."""
    draft = EventDraft(
        chain=Organisation.objects.get(pk=organisation_id), action=Action.EXPORT, outcome=Outcome.ALLOWED, status=200,
        object_type="access_log", object_id=str(organisation_id),
    )  # fmt: skip
    record_access(context, [draft])
