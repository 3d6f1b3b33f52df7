"""Records-management retention: erase client identifiers once the retention period after last contact has passed.

The default follows the NHS England Records Management Code of Practice (2021, updated 2023), Appendix II:
mental health records, psychology records among them, are kept for 20 years after no further treatment is
considered (NHS Talking Therapies records are psychological therapy records; the 8 years of the code's
general adult health records is the shorter figure it does not apply to them). The period is configurable
(settings.RETENTION_YEARS_AFTER_DISCHARGE) because a provider's own records policy decides in the end.

What is erased: the identifiers of the client (local reference, NHS number, year of birth), and
identifiers_erased_at is set. What stays: the pseudonymous client and its referrals and records, which the
compliance reports count, and the access log, which names clients only by pseudonym and so stays whole and
verifiable. Each erasure writes one access event on the provider's chain, so the DPO sees what was done.
"""

from dataclasses import dataclass
from datetime import date, datetime, time

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from colocation.models import StaffProfile
from consent.access.log import AccessContext, EventDraft, record_access
from consent.access.models import Action, Outcome
from consent.models import Client, ConsentRecord, Decline, Discharge, Referral, VoluntarinessCheck, Withdrawal

DEFAULT_RETENTION_YEARS = 20
BATCH = 500  # clients erased per transaction: a long run holds no lock for long


@dataclass(frozen=True)
class RetentionPolicy:
    """How long identifiers are kept after a client's last contact with the service."""

    years: int

    def cutoff(self, today: date) -> date:
        """Clients whose last contact came before this day are past the period (relativedelta: 29 Feb -> 28 Feb)."""
        return today - relativedelta(years=self.years)

    def describe(self) -> str:
        return f"identifiers kept {self.years} years after the client's last contact (NHS Records Management Code)"


def retention_policy() -> RetentionPolicy:
    """The policy in settings, or the code's default for mental health and psychology records."""
    years = int(getattr(settings, "RETENTION_YEARS_AFTER_DISCHARGE", DEFAULT_RETENTION_YEARS))
    if years < 1:
        raise ValueError(f"RETENTION_YEARS_AFTER_DISCHARGE must be at least 1 year, not {years}.")
    return RetentionPolicy(years=years)


def _contact_since(cutoff: date) -> Q:
    """A referral with any contact on or after the cutoff: referred, consented, checked, withdrawn, declined, discharged."""
    moment = timezone.make_aware(datetime.combine(cutoff, time.min))
    since = {
        ConsentRecord: Q(given_at__gte=moment),
        VoluntarinessCheck: Q(checked_at__gte=moment),
        Withdrawal: Q(withdrawn_at__gte=moment),
        Discharge: Q(discharged_on__gte=cutoff),
        Decline: Q(declined_on__gte=cutoff),
    }
    recent = Q(referred_on__gte=cutoff)
    for model, condition in since.items():
        recent |= Q(Exists(model.objects.filter(condition, referral=OuterRef("pk"))))
    return recent


def clients_past_retention(policy: RetentionPolicy | None = None, *, today: date | None = None) -> QuerySet[Client]:
    """Clients not yet erased whose last contact (over all their referrals) came before the policy's cutoff.

    One query, counted and filtered in SQL: a client with any referral or record on or after the cutoff is
    still within the period, whatever the status of their referrals.
    """
    policy = policy or retention_policy()
    cutoff = policy.cutoff(today or timezone.localdate())
    referrals = Referral.objects.filter(client=OuterRef("pk"))
    return (
        Client.objects.filter(identifiers_erased_at__isnull=True)
        .filter(Exists(referrals), ~Exists(referrals.filter(_contact_since(cutoff))))
        .order_by("provider_id", "pk")
    )


class RetentionJob:
    """The actor of an unattended run (a scheduled job, not a person): named in the log, holding no permission."""

    pk = None
    is_authenticated = True

    def get_username(self) -> str:
        return "apply_retention"

    @property
    def staff_profile(self):
        raise StaffProfile.DoesNotExist


@dataclass
class RetentionResult:
    policy: RetentionPolicy
    cutoff: date
    erased: int
    by_provider: dict[int, int]
    dry_run: bool


def apply_retention(
    *, actor=None, policy: RetentionPolicy | None = None, today: date | None = None, dry_run: bool = False
) -> RetentionResult:
    """Erase the identifiers of every client past the retention period, logging one access event per client.

    With dry_run, count what would be erased and write nothing.
    """
    policy = policy or retention_policy()
    today = today or timezone.localdate()
    cutoff = policy.cutoff(today)
    by_provider: dict[int, int] = {}
    if dry_run:
        for provider_id in clients_past_retention(policy, today=today).values_list("provider_id", flat=True):
            by_provider[provider_id] = by_provider.get(provider_id, 0) + 1
        return RetentionResult(policy, cutoff, sum(by_provider.values()), by_provider, dry_run=True)
    context = AccessContext.for_command(actor or RetentionJob(), "apply_retention")
    purpose = f"retention: identifiers erased, last contact before {cutoff.isoformat()} ({policy.years} years)"
    while True:
        with transaction.atomic():
            # Locked so a referral recorded for the client meanwhile cannot race the erasure of its identifiers.
            batch = list(
                clients_past_retention(policy, today=today).select_related("provider").select_for_update(of=("self",))[:BATCH]
            )
            if not batch:
                break
            Client.objects.filter(pk__in=[c.pk for c in batch]).update(
                local_reference="", nhs_number="", year_of_birth=None, identifiers_erased_at=timezone.now()
            )
            # The identifiers as typed at a known client's later intake are the client's identifiers too.
            Referral.objects.filter(client__in=[c.pk for c in batch]).exclude(
                intake_nhs_number="", intake_year_of_birth=None
            ).update(intake_nhs_number="", intake_year_of_birth=None)
            record_access(
                context,
                [
                    EventDraft(chain=client.provider, action=Action.RETENTION, outcome=Outcome.ALLOWED, status=None,
                               object_type="client", object_id=str(client.pk), client_pseudonym=client.pk, purpose=purpose)
                    for client in batch
                ],
            )  # fmt: skip
            for client in batch:
                by_provider[client.provider_id] = by_provider.get(client.provider_id, 0) + 1
    return RetentionResult(policy, cutoff, sum(by_provider.values()), by_provider, dry_run=False)
