"""Writes about clients and referrals. Each is one transaction that also writes its access events."""

from datetime import date, datetime

import nhs_number
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from colocation.models import OrganisationKind, Role, Site
from colocation.selectors import is_benefits_agency_account, staff_profile_of
from consent.access import firewall
from consent.access.log import AccessContext
from consent.access.models import Action
from consent.models import (
    ACKNOWLEDGEMENTS,
    Client,
    ConsentRecord,
    ConsentScope,
    ConsentTemplate,
    Decline,
    Discharge,
    Referral,
    ReferralStatus,
    VoluntarinessCheck,
    Withdrawal,
)
from consent.source_of_referral import SOURCE_OF_REFERRAL

# Words that, in a scope or a field name, ask for sharing with a benefits agency: never permitted.
BENEFITS_AGENCY_WORDS = ("benefit", "jobcentre", "job_centre", "dwp", "work_coach", "agency")
SHARING_NOT_PERMITTED = (
    "Sharing with a benefits agency or Jobcentre Plus is not permitted: the therapy service and the benefits "
    "agency are separate and nothing about the client is shared."
)


def asks_to_share_with_benefits_agency(name: str) -> bool:
    """Whether a scope or field name asks for sharing with a benefits agency."""
    lowered = str(name).lower()
    return any(word in lowered for word in BENEFITS_AGENCY_WORDS)


def _not_in_future(value, field: str, errors: dict) -> None:
    today = timezone.localdate()
    day = timezone.localtime(value).date() if isinstance(value, datetime) else value
    if day > today:
        errors[field] = f"{value} is in the future; give a date on or before {today.isoformat()}."


def _require_clinician(context: AccessContext):
    """The recording user must be a therapist or clinical lead of a therapy provider."""
    if is_benefits_agency_account(context.user):
        firewall.refuse_list_if_not_allowed(context)
    profile = staff_profile_of(context.user)
    if profile is None or profile.role not in firewall.CLINICAL_ROLES or profile.organisation.kind != OrganisationKind.THERAPY_PROVIDER:
        raise firewall.ClientDataRefused()
    return profile


def normalise_nhs_number(value: str) -> str:
    """Digits only, or a ValidationError naming the field and the accepted form."""
    digits = "".join(ch for ch in str(value) if not ch.isspace() and ch != "-")
    if not (len(digits) == 10 and digits.isdigit() and nhs_number.is_valid(digits)):
        raise ValidationError(
            {"nhs_number": "Not a valid NHS number: give 10 digits whose last digit is the modulus-11 check digit, e.g. 9434765919."}
        )
    return digits


@transaction.atomic
def create_referral(
    *,
    context: AccessContext,
    local_reference: str,
    nhs_number: str = "",
    year_of_birth: int | None = None,
    site: Site,
    referred_on: date,
    source_of_referral: str,
    how_heard: str,
    pathway: str,
) -> Referral:
    """Record a referral, creating its client if the provider has not seen them before."""
    profile = _require_clinician(context)
    errors: dict = {}
    client_errors: dict = {}
    if site.provider_id != profile.organisation_id:
        errors["site"] = f"Site {site.pk} is run by another provider; choose one of your organisation's sites."
    _not_in_future(referred_on, "referred_on", errors)
    if source_of_referral not in SOURCE_OF_REFERRAL:
        errors["source_of_referral"] = (
            f"{source_of_referral!r} is not a SourceOfReferralIAPT code; use one of {', '.join(SOURCE_OF_REFERRAL)} "
            "(B1 for a self-referral)."
        )
    if nhs_number:
        try:
            nhs_number = normalise_nhs_number(nhs_number)
        except ValidationError as error:
            client_errors.update(error.message_dict)
    this_year = timezone.localdate().year
    if year_of_birth is not None and not (this_year - 120 <= year_of_birth <= this_year - 16):
        client_errors["year_of_birth"] = f"Give a year between {this_year - 120} and {this_year - 16} (adults only)."
    local_reference = (local_reference or "").strip()
    if not local_reference:
        client_errors["local_reference"] = "The provider's own reference for the client is required."
    client = None
    if local_reference and not client_errors:
        client = Client.objects.filter(provider_id=profile.organisation_id, local_reference=local_reference).first()
        if client is not None and nhs_number and client.nhs_number and client.nhs_number != nhs_number:
            client_errors["nhs_number"] = "This local reference is already held for a client with a different NHS number."
    if client_errors:
        errors["client"] = client_errors
    if errors:
        raise ValidationError(errors)
    if client is None:
        client = Client(
            provider_id=profile.organisation_id, local_reference=local_reference, nhs_number=nhs_number, year_of_birth=year_of_birth
        )
        client.full_clean()
        client.save()
    referral = Referral(
        client=client,
        provider_id=profile.organisation_id,
        site=site,
        team=profile.team,
        referred_on=referred_on,
        source_of_referral=source_of_referral,
        how_heard=how_heard,
        pathway=pathway,
        recorded_by=context.user,
    )
    referral.full_clean()
    referral.save()
    firewall.grant_on_creation(referral, context.user)
    firewall.record_allowed(context, referral, action=Action.CREATE, status=201)
    return referral


def _open_for_change(context: AccessContext, referral_id, *, action=Action.RECORD) -> Referral:
    # Locked: the rules below read the status and then write it.
    return firewall.open_referral(context, referral_id, purpose=firewall.Purpose.CHANGE, action=action, lock=True)


def _check_supersedes(model, supersedes_id, referral: Referral, errors: dict) -> object | None:
    if supersedes_id is None:
        return None
    previous = model.objects.filter(pk=supersedes_id, referral=referral).first()
    if previous is None:
        errors["supersedes"] = f"No {model._meta.verbose_name} {supersedes_id} on this referral to correct."
    elif model.objects.filter(supersedes=previous).exists():
        errors["supersedes"] = f"{model._meta.verbose_name.capitalize()} {supersedes_id} has already been corrected."
    return previous


@transaction.atomic
def record_consent(
    *,
    context: AccessContext,
    referral_id,
    template: ConsentTemplate,
    method: str,
    given_at: datetime,
    scopes: list[str],
    acknowledgements: dict[str, bool],
    supersedes: int | None = None,
) -> ConsentRecord:
    """Record explicit, informed, voluntary consent; the referral becomes active."""
    referral = _open_for_change(context, referral_id)
    errors: dict = {}
    missing = [name for name in ACKNOWLEDGEMENTS if acknowledgements.get(name) is not True]
    if missing:
        errors["acknowledgements"] = [
            f"{name} must be true: consent counts as explicit and voluntary only when the client has been told "
            "and has acknowledged it." for name in missing
        ]  # fmt: skip
    sharing = [s for s in scopes if asks_to_share_with_benefits_agency(s)]
    unknown = [s for s in scopes if s not in ConsentScope.values and s not in sharing]
    scope_errors = []
    if sharing:
        scope_errors.append(SHARING_NOT_PERMITTED)
    if unknown:
        scope_errors.append(f"Unknown scope(s) {', '.join(map(str, unknown))}; accepted: {', '.join(ConsentScope.values)}.")
    if ConsentScope.TREATMENT not in scopes:
        scope_errors.append("The treatment scope is required: consent to therapy is what is being recorded.")
    if scope_errors:
        errors["scopes"] = scope_errors
    _not_in_future(given_at, "given_at", errors)
    if given_at.date() < referral.referred_on:
        errors["given_at"] = f"Consent cannot be given before the referral ({referral.referred_on.isoformat()})."
    day = timezone.localtime(given_at).date()
    if template.effective_from > day or (template.effective_to and template.effective_to < day):
        errors["template"] = f"Template {template} was not in force on {day.isoformat()}."
    if referral.status in (ReferralStatus.WITHDRAWN, ReferralStatus.DISCHARGED):
        errors["referral"] = f"The referral is {referral.status}; record a new referral if the client returns."
    previous = _check_supersedes(ConsentRecord, supersedes, referral, errors)
    if errors:
        raise ValidationError(errors)
    record = ConsentRecord(
        referral=referral, template=template, method=method, given_at=given_at, scopes=list(dict.fromkeys(scopes)),
        recorded_by=context.user, supersedes=previous,
        **dict.fromkeys(ACKNOWLEDGEMENTS, True),
    )  # fmt: skip
    record.full_clean()
    record.save()
    if referral.status in (ReferralStatus.AWAITING_CONSENT, ReferralStatus.DECLINED):
        referral.status = ReferralStatus.ACTIVE
        referral.save(update_fields=["status", "updated_at"])
    return record


@transaction.atomic
def record_withdrawal(
    *, context: AccessContext, referral_id, withdrawn_at: datetime, reason: str, supersedes: int | None = None
) -> Withdrawal:
    """The client withdraws consent, free to do so at any time with no consequence."""
    referral = _open_for_change(context, referral_id, action=Action.WITHDRAWAL)
    errors: dict = {}
    _not_in_future(withdrawn_at, "withdrawn_at", errors)
    if withdrawn_at.date() < referral.referred_on:
        errors["withdrawn_at"] = f"A withdrawal cannot come before the referral ({referral.referred_on.isoformat()})."
    previous = _check_supersedes(Withdrawal, supersedes, referral, errors)
    if previous is None and referral.status not in (ReferralStatus.AWAITING_CONSENT, ReferralStatus.ACTIVE):
        errors["referral"] = f"The referral is already {referral.status}; there is nothing to withdraw from."
    if errors:
        raise ValidationError(errors)
    withdrawal = Withdrawal(referral=referral, withdrawn_at=withdrawn_at, reason=reason, recorded_by=context.user, supersedes=previous)
    withdrawal.full_clean()
    withdrawal.save()
    if referral.status != ReferralStatus.WITHDRAWN:
        referral.status = ReferralStatus.WITHDRAWN
        referral.save(update_fields=["status", "updated_at"])
    return withdrawal


@transaction.atomic
def record_voluntariness_check(
    *,
    context: AccessContext,
    referral_id,
    checked_at: datetime,
    stage: str,
    told_attendance_required: bool,
    sanction_mentioned: bool,
    feels_free_to_stop: bool,
    goals_set_by_client: bool,
    employment_goal_raised_by: str,
    supersedes: int | None = None,
) -> VoluntarinessCheck:
    """Record a check that the referral is still voluntary; what it finds is never refused."""
    referral = _open_for_change(context, referral_id)
    errors: dict = {}
    _not_in_future(checked_at, "checked_at", errors)
    if checked_at.date() < referral.referred_on:
        errors["checked_at"] = f"A check cannot come before the referral ({referral.referred_on.isoformat()})."
    if referral.status == ReferralStatus.DECLINED:
        errors["referral"] = "The client declined after it was explained; there is no episode to check."
    previous = _check_supersedes(VoluntarinessCheck, supersedes, referral, errors)
    if errors:
        raise ValidationError(errors)
    check = VoluntarinessCheck(
        referral=referral, checked_at=checked_at, stage=stage, told_attendance_required=told_attendance_required,
        sanction_mentioned=sanction_mentioned, feels_free_to_stop=feels_free_to_stop,
        goals_set_by_client=goals_set_by_client, employment_goal_raised_by=employment_goal_raised_by,
        recorded_by=context.user, supersedes=previous,
    )  # fmt: skip
    check.full_clean()
    check.save()
    return check


@transaction.atomic
def record_decline(*, context: AccessContext, referral_id, declined_on: date) -> Decline:
    """The client decided not to go ahead after it was explained: recorded and counted, never dropped."""
    referral = _open_for_change(context, referral_id)
    errors: dict = {}
    _not_in_future(declined_on, "declined_on", errors)
    if declined_on < referral.referred_on:
        errors["declined_on"] = f"Cannot decline before the referral ({referral.referred_on.isoformat()})."
    if referral.status != ReferralStatus.AWAITING_CONSENT:
        errors["referral"] = f"Only a referral awaiting consent can be declined; this one is {referral.status}."
    if errors:
        raise ValidationError(errors)
    decline = Decline(referral=referral, declined_on=declined_on, recorded_by=context.user)
    decline.full_clean()
    decline.save()
    referral.status = ReferralStatus.DECLINED
    referral.save(update_fields=["status", "updated_at"])
    return decline


@transaction.atomic
def discharge_referral(*, context: AccessContext, referral_id, discharged_on: date, reason: str) -> Discharge:
    """End the episode."""
    referral = _open_for_change(context, referral_id)
    errors: dict = {}
    _not_in_future(discharged_on, "discharged_on", errors)
    if discharged_on < referral.referred_on:
        errors["discharged_on"] = f"Cannot discharge before the referral ({referral.referred_on.isoformat()})."
    if referral.status in (ReferralStatus.DISCHARGED, ReferralStatus.DECLINED):
        errors["referral"] = f"The referral is already {referral.status}."
    if errors:
        raise ValidationError(errors)
    discharge = Discharge(referral=referral, discharged_on=discharged_on, reason=reason, recorded_by=context.user)
    discharge.full_clean()
    discharge.save()
    referral.status = ReferralStatus.DISCHARGED
    referral.save(update_fields=["status", "updated_at"])
    return discharge


def may_record_referrals(user) -> bool:
    profile = staff_profile_of(user)
    return (
        profile is not None
        and not is_benefits_agency_account(user)
        and profile.role in (Role.THERAPIST, Role.CLINICAL_LEAD)
        and profile.organisation.kind == OrganisationKind.THERAPY_PROVIDER
    )
