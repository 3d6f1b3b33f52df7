"""Writes about clients and referrals. Each is one transaction that also writes its access events."""

from datetime import date, datetime, timedelta

import nhs_number
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from colocation.models import Site
from colocation.selectors import clinician_profile_of, is_benefits_agency_account
from consent.access import firewall
from consent.access.log import AccessContext
from consent.access.models import Action
from consent.lattice_cells import refresh_report_rows
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
    ScopeWithdrawal,
    VoluntarinessCheck,
    Withdrawal,
)
from consent.selectors import consent_state, latest_consent
from consent.source_of_referral import SOURCE_OF_REFERRAL

# Words that, in a scope or a field name, ask for sharing with a benefits agency: never permitted.
BENEFITS_AGENCY_WORDS = ("benefit", "jobcentre", "job_centre", "dwp", "work_coach", "agency")
SHARING_NOT_PERMITTED = (
    "Sharing with a benefits agency or Jobcentre Plus is not permitted: the therapy service and the benefits "
    "agency are separate and nothing about the client is shared."
)


class FieldErrors(ValidationError):
    """Errors by field, where a field may hold errors of its own fields (the client's), as a dict.

    Django's ValidationError cannot nest a dict inside a dict (it fails with an AttributeError, which would
    be a 500); this one keeps the nesting in `message_dict`, which the API's error handler renders as
    {"client": {"nhs_number": [...]}}, the shape DRF gives for the same nested fields.
    """

    def __init__(self, errors: dict):
        self.nested = {
            field: {name: _as_list(value) for name, value in messages.items()}
            if isinstance(messages, dict)
            else _as_list(messages)
            for field, messages in errors.items()
        }
        flat = {
            field: [f"{name}: {text}" for name, texts in messages.items() for text in texts]
            if isinstance(messages, dict)
            else messages
            for field, messages in self.nested.items()
        }
        super().__init__(flat)

    @property
    def message_dict(self) -> dict:
        return {field: [messages] if isinstance(messages, dict) else messages for field, messages in self.nested.items()}


def _as_list(messages) -> list[str]:
    return [str(message) for message in messages] if isinstance(messages, list | tuple) else [str(messages)]


def asks_to_share_with_benefits_agency(name: str) -> bool:
    """Whether a scope or field name asks for sharing with a benefits agency."""
    lowered = str(name).lower()
    return any(word in lowered for word in BENEFITS_AGENCY_WORDS)


def _local_day(value: date | datetime) -> date:
    """The calendar day a date or an aware datetime falls on where the clinic is (settings.TIME_ZONE)."""
    return timezone.localtime(value).date() if isinstance(value, datetime) else value


# A clinic's device clock may run a little ahead of the server's; more than this is a time not yet come.
CLOCK_SKEW = timedelta(minutes=5)


def _not_in_future(value, field: str, errors: dict) -> None:
    if isinstance(value, datetime):
        # Compared as instants: consent "given" at 17:00 when it is 10:00 has not been given yet.
        now = timezone.now()
        if value > now + CLOCK_SKEW:
            errors[field] = (
                f"{value.isoformat()} is in the future; give a time on or before now ({now.isoformat(timespec='seconds')})."
            )
        return
    today = timezone.localdate()
    if value > today:
        errors[field] = f"{value} is in the future; give a date on or before {today.isoformat()}."


def _not_before_referral(value, field: str, referral: Referral, what: str, errors: dict) -> None:
    # Compared as local calendar days: 00:30 BST on the referral day is still that day, not the one before.
    if field not in errors and _local_day(value) < referral.referred_on:
        errors[field] = f"{what} cannot come before the referral ({referral.referred_on.isoformat()}); give a later date."


# Where a referral's status may move, and by which record. Every other move is refused with a 400 that says
# what the status is and which moves it allows: declined, withdrawn and discharged end an episode, and a
# client who comes back is a new referral, so the numbers stay honest.
TRANSITIONS: dict[str, dict[str, str]] = {
    ReferralStatus.AWAITING_CONSENT: {
        ReferralStatus.ACTIVE: "consent",
        ReferralStatus.DECLINED: "decline",
        ReferralStatus.DISCHARGED: "discharge",
    },
    ReferralStatus.ACTIVE: {
        ReferralStatus.ACTIVE: "consent",  # consent again, e.g. to a new version of the template
        ReferralStatus.WITHDRAWN: "withdrawal",
        ReferralStatus.DISCHARGED: "discharge",
    },
    ReferralStatus.DECLINED: {},
    ReferralStatus.WITHDRAWN: {},
    ReferralStatus.DISCHARGED: {},
}


def _check_transition(referral: Referral, to: str, errors: dict) -> None:
    """Add an error naming the current status and the allowed next steps if the move is not allowed."""
    if to in TRANSITIONS[referral.status]:
        return
    allowed = TRANSITIONS[referral.status]
    if allowed:
        steps = ", ".join(f"{record} (-> {status})" for status, record in allowed.items())
        errors["referral"] = f"The referral is {referral.status}; it cannot become {to}. What can be recorded now: {steps}."
    else:
        errors["referral"] = (
            f"The referral is {referral.status}, which ends the episode; it cannot become {to}. "
            "Record a new referral if the client comes back."
        )


def _move(referral: Referral, to: str) -> None:
    if referral.status != to:
        referral.status = to
        referral.save(update_fields=["status", "updated_at"])


def require_recorder(context: AccessContext):
    """The recording user must be a therapist or clinical lead of a therapy provider; anyone else is refused (403).

    A benefits-agency account's attempt is logged as a denied access; the HTTP layer calls this before it
    even parses a body, so such an account learns nothing from validation messages either.
    """
    if is_benefits_agency_account(context.user):
        firewall.refuse_benefits_agency(context, action=Action.CREATE)
    profile = clinician_profile_of(context.user)
    if profile is None:
        raise firewall.ClientDataRefused()
    return profile


def normalise_nhs_number(value: str) -> str:
    """Digits only, or a ValidationError naming the field and the accepted form."""
    digits = "".join(ch for ch in str(value) if not ch.isspace() and ch != "-")
    if not (len(digits) == 10 and digits.isdigit() and nhs_number.is_valid(digits)):
        raise ValidationError(
            {
                "nhs_number": "Not a valid NHS number: give 10 digits whose last digit is the modulus-11 check digit, e.g. 9434765919."
            }
        )
    return digits


def _check_client_fields(local_reference: str, nhs_number: str, year_of_birth: int | None, errors: dict) -> str:
    """Add the client's own field errors; the NHS number as stored (digits only)."""
    if nhs_number:
        try:
            nhs_number = normalise_nhs_number(nhs_number)
        except ValidationError as error:
            errors.update(error.message_dict)
    this_year = timezone.localdate().year
    if year_of_birth is not None and not (this_year - 120 <= year_of_birth <= this_year - 16):
        errors["year_of_birth"] = f"Give a year between {this_year - 120} and {this_year - 16} (adults only)."
    if not local_reference:
        errors["local_reference"] = "The provider's own reference for the client is required."
    return nhs_number


def _known_client(context: AccessContext, provider_id: int, local_reference: str, nhs_number: str, errors: dict):
    """The provider's client with this local reference, if any, and whether the recorder cannot see them.

    A client of the provider this recorder cannot see (a colleague's): the referral is recorded for them, as the
    local reference says, but answers only with what was typed, whether the NHS number matches or not (no
    oracle), and the DPO is alerted (README, "Known clients").
    """
    client = Client.objects.filter(provider_id=provider_id, local_reference=local_reference).first()
    if client is None:
        return None, False
    if not firewall.client_identifiers_visible_to(context.user, client):
        return client, True
    # The recorder already sees this client's identifiers, so saying the number differs tells them nothing.
    if nhs_number and client.nhs_number and client.nhs_number != nhs_number:
        errors["nhs_number"] = "This local reference is already held for a client with a different NHS number."
    return client, False


def _new_client(provider_id: int, local_reference: str, nhs_number: str, year_of_birth: int | None) -> Client:
    client = Client(provider_id=provider_id, local_reference=local_reference, nhs_number=nhs_number, year_of_birth=year_of_birth)
    # The uniqueness of the local reference is the database's to enforce: a look-up here could pass in two
    # racing requests alike, so the insert below is what decides.
    client.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            client.save()
    except IntegrityError:
        # Another intake recorded this client between our look-up and now: theirs is the same person.
        client = Client.objects.get(provider_id=provider_id, local_reference=local_reference)
    return client


def _check_referral_fields(profile, site: Site, referred_on: date, source_of_referral: str, errors: dict) -> None:
    if site.provider_id != profile.organisation_id:
        errors["site"] = f"Site {site.pk} is run by another provider; choose one of your organisation's sites."
    _not_in_future(referred_on, "referred_on", errors)
    if source_of_referral not in SOURCE_OF_REFERRAL:
        errors["source_of_referral"] = (
            f"{source_of_referral!r} is not a SourceOfReferralIAPT code; use one of {', '.join(SOURCE_OF_REFERRAL)} "
            "(B1 for a self-referral)."
        )


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
    profile = require_recorder(context)
    errors: dict = {}
    client_errors: dict = {}
    _check_referral_fields(profile, site, referred_on, source_of_referral, errors)
    local_reference = (local_reference or "").strip()
    nhs_number = _check_client_fields(local_reference, nhs_number, year_of_birth, client_errors)
    client, known_unseen = None, False
    if not client_errors:
        client, known_unseen = _known_client(context, profile.organisation_id, local_reference, nhs_number, client_errors)
    if client_errors:
        errors["client"] = client_errors
    if errors:
        raise FieldErrors(errors)
    if client is None:
        client = _new_client(profile.organisation_id, local_reference, nhs_number, year_of_birth)
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
        client_known_at_intake=known_unseen,
        intake_nhs_number=nhs_number if known_unseen else "",
        intake_year_of_birth=year_of_birth if known_unseen else None,
    )
    referral.full_clean()
    referral.save()
    refresh_report_rows(referral.pk, new_referral=True)
    firewall.grant_on_creation(referral, context.user)
    firewall.record_allowed(context, referral, action=Action.CREATE, status=201)
    if known_unseen:
        firewall.record_known_client(context, referral)
    return referral


def _open_for_change(context: AccessContext, referral_id, referral: Referral | None, *, action=Action.RECORD) -> Referral:
    """The referral a record is written on: opened by the HTTP layer and handed over, or opened here (locked)."""
    return firewall.open_to_act(context, referral_id, referral=referral, purpose=firewall.Purpose.CHANGE, action=action)


def _raise_if(errors: dict) -> None:
    """Every problem of a record in one ValidationError, by field."""
    if errors:
        raise ValidationError(errors)


def _save_record(context: AccessContext, referral: Referral, record, *, action=Action.RECORD, move_to: str | None = None):
    """The end every record_* service shares: validate and save the record, move the referral's status if it
    moves, and log the allowed action on the referral, all in the service's transaction."""
    record.full_clean()
    record.save()
    refresh_report_rows(referral.pk, written=type(record))
    if move_to is not None:
        _move(referral, move_to)
    # status 200, as the firewall logged an opened referral before the record existed.
    firewall.record_allowed(context, referral, action=action)
    return record


def _check_supersedes(model, supersedes_id, referral: Referral, errors: dict) -> object | None:
    if supersedes_id is None:
        return None
    previous = model.objects.filter(pk=supersedes_id, referral=referral).first()
    if previous is None:
        errors["supersedes"] = f"No {model._meta.verbose_name} {supersedes_id} on this referral to correct."
    elif model.objects.filter(supersedes=previous).exists():
        errors["supersedes"] = f"{model._meta.verbose_name.capitalize()} {supersedes_id} has already been corrected."
    return previous


def _check_acknowledgements(acknowledgements: dict[str, bool], errors: dict) -> None:
    missing = [name for name in ACKNOWLEDGEMENTS if acknowledgements.get(name) is not True]
    if missing:
        errors["acknowledgements"] = [
            f"{name} must be true: consent counts as explicit and voluntary only when the client has been told "
            "and has acknowledged it." for name in missing
        ]  # fmt: skip


def _unknown_scopes(scopes: list[str]) -> list[str]:
    """Scopes that are neither known nor a request to share with a benefits agency (which has its own message)."""
    return [s for s in scopes if s not in ConsentScope.values and not asks_to_share_with_benefits_agency(s)]


def _check_consent_scopes(scopes: list[str], errors: dict) -> None:
    scope_errors = []
    if any(asks_to_share_with_benefits_agency(s) for s in scopes):
        scope_errors.append(SHARING_NOT_PERMITTED)
    unknown = _unknown_scopes(scopes)
    if unknown:
        scope_errors.append(f"Unknown scope(s) {', '.join(map(str, unknown))}; accepted: {', '.join(ConsentScope.values)}.")
    if ConsentScope.TREATMENT not in scopes:
        scope_errors.append("The treatment scope is required: consent to therapy is what is being recorded.")
    if scope_errors:
        errors["scopes"] = scope_errors


def _check_template_in_force(template: ConsentTemplate, given_at: datetime, errors: dict) -> None:
    day = _local_day(given_at)
    if template.effective_from > day or (template.effective_to and template.effective_to < day):
        errors["template"] = (
            f"Template {template} was not in force on {day.isoformat()}; choose one in force then (see /api/v1/consent-templates/)."
        )


@transaction.atomic
def record_consent(
    *,
    context: AccessContext,
    referral_id=None,
    referral: Referral | None = None,
    template: ConsentTemplate,
    method: str,
    given_at: datetime,
    scopes: list[str],
    acknowledgements: dict[str, bool],
    supersedes: int | None = None,
) -> ConsentRecord:
    """Record explicit, informed, voluntary consent; the referral becomes active.

    With `supersedes`, the record corrects an earlier one of this referral and the status stays as it is.
    """
    referral = _open_for_change(context, referral_id, referral)
    errors: dict = {}
    _check_acknowledgements(acknowledgements, errors)
    _check_consent_scopes(scopes, errors)
    _not_in_future(given_at, "given_at", errors)
    _not_before_referral(given_at, "given_at", referral, "Consent", errors)
    _check_template_in_force(template, given_at, errors)
    if supersedes is None:
        _check_transition(referral, ReferralStatus.ACTIVE, errors)
    elif referral.status == ReferralStatus.DECLINED:
        errors["referral"] = "The client declined after it was explained; there is no consent to correct."
    previous = _check_supersedes(ConsentRecord, supersedes, referral, errors)
    _raise_if(errors)
    record = ConsentRecord(
        referral=referral, template=template, method=method, given_at=given_at, scopes=list(dict.fromkeys(scopes)),
        recorded_by=context.user, supersedes=previous,
        **dict.fromkeys(ACKNOWLEDGEMENTS, True),
    )  # fmt: skip
    # A correction fixes what was recorded; it does not undo a withdrawal or a discharge that followed.
    return _save_record(context, referral, record, move_to=ReferralStatus.ACTIVE if supersedes is None else None)


@transaction.atomic
def record_withdrawal(
    *,
    context: AccessContext,
    referral_id=None,
    referral: Referral | None = None,
    withdrawn_at: datetime,
    reason: str,
    supersedes: int | None = None,
) -> Withdrawal:
    """The client withdraws consent, free to do so at any time with no consequence."""
    referral = _open_for_change(context, referral_id, referral, action=Action.WITHDRAWAL)
    errors: dict = {}
    _not_in_future(withdrawn_at, "withdrawn_at", errors)
    _not_before_referral(withdrawn_at, "withdrawn_at", referral, "A withdrawal", errors)
    previous = _check_supersedes(Withdrawal, supersedes, referral, errors)
    if supersedes is None:
        # A correction keeps the referral withdrawn; a first withdrawal needs consent in force to withdraw.
        _check_transition(referral, ReferralStatus.WITHDRAWN, errors)
    consent = latest_consent(referral)
    if "withdrawn_at" not in errors and consent is not None and withdrawn_at < consent.given_at:
        errors["withdrawn_at"] = f"A withdrawal cannot come before the consent it withdraws ({consent.given_at.isoformat()})."
    _raise_if(errors)
    withdrawal = Withdrawal(
        referral=referral, withdrawn_at=withdrawn_at, reason=reason, recorded_by=context.user, supersedes=previous
    )
    return _save_record(context, referral, withdrawal, action=Action.WITHDRAWAL, move_to=ReferralStatus.WITHDRAWN)


@transaction.atomic
def record_scope_withdrawal(
    *,
    context: AccessContext,
    referral_id=None,
    referral: Referral | None = None,
    scopes: list[str],
    withdrawn_at: datetime,
    reason: str,
) -> list[ScopeWithdrawal]:
    """The client takes back one or more uses of their data (say, contact by SMS) and stays in therapy.

    One append-only record per use. The episode goes on: its status is unchanged and it can still be
    discharged. Treatment is not a use that can be withdrawn on its own: that is withdrawing from therapy.
    """
    referral = _open_for_change(context, referral_id, referral, action=Action.WITHDRAWAL)
    errors: dict = {}
    scopes = list(dict.fromkeys(scopes or []))
    state = consent_state(referral)
    scope_errors = []
    if not scopes:
        scope_errors.append("Choose at least one use to withdraw, or withdraw from therapy altogether.")
    if any(asks_to_share_with_benefits_agency(scope) for scope in scopes):
        scope_errors.append(SHARING_NOT_PERMITTED)
    unknown = _unknown_scopes(scopes)
    if unknown:
        scope_errors.append(f"Unknown use(s) {', '.join(map(str, unknown))}; accepted: {', '.join(ConsentScope.values)}.")
    if ConsentScope.TREATMENT in scopes:
        scope_errors.append(
            "Treatment cannot be withdrawn as one use: to stop therapy, record a withdrawal from therapy instead."
        )
    known = [s for s in scopes if s in ConsentScope.values and s != ConsentScope.TREATMENT]
    if referral.status != ReferralStatus.ACTIVE:
        errors["referral"] = f"The referral is {referral.status}: there is no consent in force to withdraw a use from."
    else:
        not_in_force = [s for s in known if s not in state.in_force]
        if not_in_force:
            scope_errors.append(
                f"Not in force, so nothing to withdraw: {', '.join(not_in_force)} (never agreed, or already withdrawn)."
            )
    if scope_errors:
        errors["scopes"] = scope_errors
    _not_in_future(withdrawn_at, "withdrawn_at", errors)
    _not_before_referral(withdrawn_at, "withdrawn_at", referral, "A withdrawal", errors)
    if "withdrawn_at" not in errors and state.consent is not None and withdrawn_at < state.consent.given_at:
        errors["withdrawn_at"] = (
            f"A withdrawal cannot come before the consent it withdraws ({state.consent.given_at.isoformat()})."
        )
    _raise_if(errors)
    rows = []
    for scope in known:
        row = ScopeWithdrawal(referral=referral, scope=scope, withdrawn_at=withdrawn_at, reason=reason, recorded_by=context.user)
        row.full_clean()
        row.save()
        rows.append(row)
    firewall.record_allowed(context, referral, action=Action.WITHDRAWAL)
    return rows


@transaction.atomic
def record_voluntariness_check(
    *,
    context: AccessContext,
    referral_id=None,
    referral: Referral | None = None,
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
    referral = _open_for_change(context, referral_id, referral)
    errors: dict = {}
    _not_in_future(checked_at, "checked_at", errors)
    _not_before_referral(checked_at, "checked_at", referral, "A check", errors)
    if referral.status == ReferralStatus.DECLINED:
        errors["referral"] = "The client declined after it was explained; there is no episode to check."
    previous = _check_supersedes(VoluntarinessCheck, supersedes, referral, errors)
    _raise_if(errors)
    check = VoluntarinessCheck(
        referral=referral, checked_at=checked_at, stage=stage, told_attendance_required=told_attendance_required,
        sanction_mentioned=sanction_mentioned, feels_free_to_stop=feels_free_to_stop,
        goals_set_by_client=goals_set_by_client, employment_goal_raised_by=employment_goal_raised_by,
        recorded_by=context.user, supersedes=previous,
    )  # fmt: skip
    return _save_record(context, referral, check)


@transaction.atomic
def record_decline(*, context: AccessContext, referral_id=None, referral: Referral | None = None, declined_on: date) -> Decline:
    """The client decided not to go ahead after it was explained: recorded and counted, never dropped."""
    referral = _open_for_change(context, referral_id, referral)
    errors: dict = {}
    _not_in_future(declined_on, "declined_on", errors)
    _not_before_referral(declined_on, "declined_on", referral, "A decline", errors)
    _check_transition(referral, ReferralStatus.DECLINED, errors)
    _raise_if(errors)
    decline = Decline(referral=referral, declined_on=declined_on, recorded_by=context.user)
    return _save_record(context, referral, decline, move_to=ReferralStatus.DECLINED)


@transaction.atomic
def discharge_referral(
    *, context: AccessContext, referral_id=None, referral: Referral | None = None, discharged_on: date, reason: str
) -> Discharge:
    """End the episode."""
    referral = _open_for_change(context, referral_id, referral)
    errors: dict = {}
    _not_in_future(discharged_on, "discharged_on", errors)
    _not_before_referral(discharged_on, "discharged_on", referral, "A discharge", errors)
    _check_transition(referral, ReferralStatus.DISCHARGED, errors)
    _raise_if(errors)
    discharge = Discharge(referral=referral, discharged_on=discharged_on, reason=reason, recorded_by=context.user)
    return _save_record(context, referral, discharge, move_to=ReferralStatus.DISCHARGED)


def may_record_referrals(user) -> bool:
    """Whether the user may record referrals: a clinician of a therapy provider."""
    return clinician_profile_of(user) is not None
