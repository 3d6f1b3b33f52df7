"""The data firewall: who may see or act on which referral, decided in one place and logged.

Deny by default. One rule sits above the object permissions and cannot be granted away: an account of a
benefits agency gets nothing about any client, whatever flags, groups or permission rows it holds.
"""

import uuid
from dataclasses import dataclass, replace
from enum import Enum

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import Http404
from guardian.shortcuts import assign_perm, remove_perm

from colocation.models import Organisation, Role, User
from colocation.selectors import (
    CLINICAL_ROLES,
    clinician_profile_of,
    is_benefits_agency_account,
    provider_profile_of,
    staff_profile_of,
)
from consent.access import account_events
from consent.access.log import WITHHELD, AccessContext, AlertReason, EventDraft, record_access
from consent.access.models import (
    Action,
    CaseloadEntry,
    GrantRefused,
    Outcome,
    ReferralUserObjectPermission,
    refuse_client_data_grant_to,
)
from consent.models import Referral

VIEW, CHANGE = "view_referral", "change_referral"


class Purpose(Enum):
    """What the caller wants to do with a referral; each has its own rule below."""

    VIEW = "view"  # clinical read: detail, list, consent receipt
    CHANGE = "change"  # record consent, withdrawal, check, decline, discharge
    ASSIGN = "assign"  # a clinical lead assigns or unassigns therapists
    ACCESS_HISTORY = "access_history"  # the assigned team or the provider's DPO
    FHIR_EXPORT = "fhir_export"  # the assigned team or the provider's DPO
    SUBJECT_ACCESS = "subject_access"  # the provider's DPO only


@dataclass
class Refusal:
    """The denied events a refusal wrote, kept on its exception so the HTTP layer can write them again after it
    rolls the refused request back (consent.access.refusals)."""

    context: AccessContext
    drafts: list[EventDraft]
    written: tuple[tuple[int, int, str], ...]  # (chain, seq, hash) of each event as first written


class ReferralNotFound(Http404):
    """The same answer for a referral that does not exist and one the user may not see."""

    def __init__(self, refusal: Refusal | None = None):
        super().__init__("No referral found with that id.")
        self.refusal = refusal


class ClientDataRefused(PermissionDenied):
    """A client-data list refused as a whole (benefits-agency accounts), with no count."""

    def __init__(self, refusal: Refusal | None = None):
        super().__init__("This account may not see client data.")
        self.refusal = refusal


def _granted(user: User, codename: str, provider_id: int) -> dict:
    """The filter to the referrals of this provider granted to the user directly or through a group.

    Read from the user's caseload (consent.access.models.CaseloadEntry, kept equal to guardian's rows), in one
    join: no query for the user's groups first, no permission table. The entry's copies of the referral's list
    order are joined equal to the referral's own columns, so PostgreSQL knows a walk of the caseload index in
    its order is the list's order (referred_on, created_at, id): a page of 50 reads 50 entries, as a plain
    "my referrals" query on its index would, instead of fetching and sorting every referral granted. A copy
    that ever differed from its referral would hide that referral, never show one not granted.
    """
    on_caseload = {
        "caseload_entries__user_id": user.pk,
        "caseload_entries__codename": codename,
        "caseload_entries__provider_id": provider_id,
    }
    if connection.vendor == "postgresql":
        # SQLite draws no order from equal columns: there the equalities only tempted its planner to reach each
        # referral through the (referred_on, created_at) index, whose keys many referrals share, instead of by id.
        on_caseload |= {"caseload_entries__referred_on": F("referred_on"), "caseload_entries__created_at": F("created_at")}
    return on_caseload


def referrals_visible_to(user: User, purpose: Purpose = Purpose.VIEW, base: QuerySet | None = None) -> QuerySet:
    """The referrals this user may reach for this purpose, filtered in SQL. Empty for anyone not allowed."""
    base = Referral.objects.all() if base is None else base
    # A benefits-agency account is refused first, before any permission: nothing can grant this away.
    profile = provider_profile_of(user)
    if profile is None:
        return base.none()
    own = base.filter(provider_id=profile.organisation_id)
    is_dpo = profile.role == Role.DPO
    if purpose is Purpose.SUBJECT_ACCESS:
        return own if is_dpo else base.none()
    if purpose in (Purpose.ACCESS_HISTORY, Purpose.FHIR_EXPORT) and is_dpo:
        return own
    if profile.role not in CLINICAL_ROLES:
        return base.none()
    if purpose is Purpose.ASSIGN and profile.role != Role.CLINICAL_LEAD:
        return base.none()
    codename = CHANGE if purpose in (Purpose.CHANGE, Purpose.ASSIGN) else VIEW
    visible = base.filter(provider_id=profile.organisation_id, **_granted(user, codename, profile.organisation_id))
    if not base.query.where and hasattr(visible, "counted_by"):
        # Nothing else narrows it: the count is the user's entries, one index range, as a plain "my referrals"
        # count reads its index, instead of one probe of the referral table per referral granted.
        visible = visible.counted_by(CaseloadEntry.objects.filter(
            user_id=user.pk, codename=codename, provider_id=profile.organisation_id))  # fmt: skip
    return visible


def _actor_chains(user: User) -> list[Organisation]:
    """The chains a refusal of this actor goes on, whatever it was about: their organisation's chains.

    A provider's own chain; for a benefits agency, every provider co-located with it, so each of their DPOs
    sees the attempt (see consent.access.account_events.chains_of_organisation). None for an account of no
    organisation.
    """
    profile = staff_profile_of(user)
    return account_events.chains_of_organisation(profile.organisation) if profile is not None else []


def _referral_draft(referral: Referral, chain, *, action, outcome, status, purpose="", alerts=()) -> EventDraft:
    return EventDraft(
        chain=chain,
        action=action,
        outcome=outcome,
        status=status,
        object_type="referral",
        object_id=str(referral.pk),
        client_pseudonym=referral.client_id,
        referral_id=referral.pk,
        purpose=purpose,
        extra_alerts=list(alerts),
    )


def _log_refusal(context: AccessContext, *, action: str, referral: Referral | None, object_id: str, status: int) -> Refusal:
    """A refusal's denied events: the same trace on the actor's own chains whether the id exists or not, and,
    for a referral that exists, the full event (its client's pseudonym) on its provider's chain.

    So another provider's DPO, reading their own chain, cannot tell which ids exist at ours: a probe of a real
    referral and of a made-up id leave the same event there. The owner's DPO sees the attempt on their client.
    """
    owner = referral.provider if referral is not None else None
    if object_id:
        # The id asked for is kept only where it names the chain's own referral: on the actor's other chains it
        # is withheld (there it would tell their DPO another provider's ids), and so is its place in the path.
        context = replace(context, path=context.path.replace(object_id, WITHHELD))
    drafts = [
        EventDraft(chain=chain, action=action, outcome=Outcome.DENIED, status=status, object_type="referral",
                   object_id=WITHHELD if object_id else "")
        for chain in _actor_chains(context.user)
        if owner is None or chain.pk != owner.pk
    ]  # fmt: skip
    if referral is not None:
        drafts.append(_referral_draft(referral, owner, action=action, outcome=Outcome.DENIED, status=status))
    refusal = Refusal(context=context, drafts=drafts, written=())
    # Serving a request, the refusal is written once, after the request's transaction has rolled back
    # (consent.access.refusals); anywhere else (a command, a shell) it is written now.
    if not account_events.serving_a_request():
        log_refusal(refusal)
    return refusal


def log_refusal(refusal: Refusal) -> None:
    """Write a refusal's denied events again, after the refused request rolled back (consent.access.refusals)."""
    events = record_access(refusal.context, refusal.drafts)
    refusal.written = tuple((e.chain_id, e.seq, e.hash) for e in events)


def _parse_id(referral_id) -> uuid.UUID | None:
    try:
        return referral_id if isinstance(referral_id, uuid.UUID) else uuid.UUID(str(referral_id))
    except (TypeError, ValueError):
        return None


def _not_found(context: AccessContext, pk: uuid.UUID | None, referral_id, *, action: str) -> ReferralNotFound:
    """The refusal of a referral the user may not reach, logged: the same for one that exists and one that does not."""
    existing = Referral.objects.select_related("provider").filter(pk=pk).first() if pk else None
    return ReferralNotFound(_log_refusal(context, action=action, referral=existing, object_id=str(referral_id), status=404))


def open_referral(
    context: AccessContext,
    referral_id,
    *,
    purpose: Purpose,
    action: str = Action.READ,
    base: QuerySet | None = None,
    lock: bool = False,
    note: str = "",
    log_allowed: bool = True,
) -> Referral:
    """The one way to reach a single referral: checked, logged, or refused as not found.

    `note` says on the allowed event what was done (e.g. which therapist was assigned). With `log_allowed`
    false the allowed event is left to the service that acts on the referral, written once it has acted
    (record_opened_action), so it can say what was done; a refusal is logged here whatever.
    """
    pk = _parse_id(referral_id)
    visible = referrals_visible_to(context.user, purpose, base)
    if lock:
        visible = visible.select_for_update(of=("self",))
    referral = visible.filter(pk=pk).first() if pk else None
    if referral is None:
        raise _not_found(context, pk, referral_id, action=action)
    if log_allowed:
        record_allowed(context, referral, action=action, purpose=note)
    referral.opened_for = (context.user.pk, purpose)
    return referral


def require_opened(context: AccessContext, referral: Referral, purpose: "Purpose | str") -> Referral:
    """A referral handed to a service must have been opened by open_referral, for this user and purpose.

    Not a security boundary on its own (the firewall decided when it opened it): it stops a caller from
    handing a service a referral it loaded some other way.
    """
    if getattr(referral, "opened_for", None) != (context.user.pk, purpose):
        raise TypeError(f"Referral {referral.pk} was not opened through the firewall for {purpose} by this user.")
    return referral


def open_to_act(
    context: AccessContext, referral_id=None, *, referral: Referral | None = None, purpose: Purpose, action: str
) -> Referral:
    """The referral a write acts on, locked (its rules read the status, then write it).

    Handed over already opened by the HTTP layer (which opens it before it parses a body), or opened here.
    Either way its allowed event is the writer's, written with record_allowed once the write is done.
    """
    if referral is not None:
        return require_opened(context, referral, purpose)
    return open_referral(context, referral_id, purpose=purpose, action=action, lock=True, log_allowed=False)


BREAK_GLASS = "break_glass"  # what open_for_break_glass marks a referral opened for


def open_for_break_glass(context: AccessContext, referral_id, *, base: QuerySet | None = None) -> Referral:
    """Check a break-glass attempt before its reason is read: only a clinical lead, only their organisation's referrals.

    Anyone else, and any id that is not such a referral, gets the logged 404. The allowed event is break_glass's.
    """
    pk = _parse_id(referral_id)
    profile = clinician_profile_of(context.user)
    referral = None
    if pk and profile is not None and profile.role == Role.CLINICAL_LEAD:
        queryset = Referral.objects.all() if base is None else base
        referral = queryset.filter(pk=pk, provider_id=profile.organisation_id).first()
    if referral is None:
        raise _not_found(context, pk, referral_id, action=Action.BREAK_GLASS)
    referral.opened_for = (context.user.pk, BREAK_GLASS)
    return referral


def break_glass(
    context: AccessContext, referral_id=None, *, reason: str, base: QuerySet | None = None, referral: Referral | None = None
) -> Referral:
    """A clinical lead opens a referral of their own organisation outside their assignment, giving a reason.

    `referral` is one open_for_break_glass already opened (the HTTP layer does so before reading the reason).
    """
    if referral is None:
        referral = open_for_break_glass(context, referral_id, base=base)
    require_opened(context, referral, BREAK_GLASS)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Break-glass access needs a reason, for example a safeguarding concern."})
    record_access(
        context,
        [
            _referral_draft(
                referral, referral.provider, action=Action.BREAK_GLASS, outcome=Outcome.ALLOWED, status=200,
                purpose=reason, alerts=[AlertReason.OUTSIDE_ASSIGNMENT],
            )
        ],
    )  # fmt: skip
    return referral


def refuse_benefits_agency(context: AccessContext, *, action: str) -> None:
    """A benefits-agency account is refused a door to client data as a whole (an intake, break-glass, a report,
    the DPO's endpoints), and the attempt is logged as `action`, denied."""
    if is_benefits_agency_account(context.user):
        raise ClientDataRefused(_log_refusal(context, action=action, referral=None, object_id="", status=403))


def refuse_list_if_not_allowed(context: AccessContext) -> None:
    """A benefits-agency account is refused every client-data list as a whole (no count), and the attempt logged."""
    refuse_benefits_agency(context, action=Action.LIST)


def record_listed(context: AccessContext, referrals) -> None:
    """One access event per referral shown in a list, in one bulk insert."""
    record_access(
        context,
        [_referral_draft(r, r.provider, action=Action.LIST, outcome=Outcome.ALLOWED, status=200) for r in referrals],
    )


def record_allowed(context: AccessContext, referral: Referral, *, action: str, status: int = 200, purpose: str = ""):
    """Log an allowed action on a referral the firewall already opened (a record written, an export)."""
    record_access(
        context,
        [_referral_draft(referral, referral.provider, action=action, outcome=Outcome.ALLOWED, status=status, purpose=purpose)],
    )


def client_identifiers_visible_to(user: User, client) -> bool:
    """Whether the user already sees this client's identifiers: through a referral of theirs recorded with them.

    A referral recorded for a client its recorder could not see shows only what was typed at its intake, so it
    does not count: a second such intake must not give the held identifiers back either.
    """
    return referrals_visible_to(user).filter(client_id=client.pk, client_known_at_intake=False).exists()


def record_known_client(context: AccessContext, referral: Referral) -> None:
    """Alert the provider's DPO: a referral was recorded for a client it already held, by someone who could not see them.

    An event about the client, not the new referral, so the referral's own access history (which its recorder
    may read) does not show it: the recorder learns nothing from it about the client they typed a reference for.
    """
    record_access(
        context,
        [
            EventDraft(
                chain=referral.provider, action=Action.CREATE, outcome=Outcome.ALLOWED, status=201, object_type="client",
                object_id=str(referral.client_id), client_pseudonym=referral.client_id,
                purpose=f"referral {referral.pk} recorded for a client already held, by someone who could not see them",
                extra_alerts=[AlertReason.KNOWN_CLIENT],
            )
        ],
    )  # fmt: skip


def grant_on_creation(referral: Referral, recorder: User) -> None:
    """A new referral is granted to the therapist who recorded it and to their clinical team's group."""
    refuse_client_data_grant_to(recorder)
    # The referral's creation event records these grants; they are not logged again as authorisation changes.
    with account_events.firewall_operation():
        for codename in (VIEW, CHANGE):
            assign_perm(f"consent.{codename}", recorder, referral)
            if referral.team_id:
                assign_perm(f"consent.{codename}", referral.team.group, referral)
    # Its recorder has it open: they may read it back in the answer to their intake.
    referral.opened_for = (recorder.pk, Purpose.CHANGE)


@transaction.atomic
def assign_therapist(context: AccessContext, referral_id=None, therapist: User | None = None, *,
                     referral: Referral | None = None) -> Referral:  # fmt: skip
    """Grant a therapist of the referral's provider access to it: one event, the grant (or its refusal).

    The referral is opened for assigning first, so a user who may not assign gets the logged 404 before
    anything about the therapist is checked or said.
    """
    referral = open_to_act(context, referral_id, referral=referral, purpose=Purpose.ASSIGN, action=Action.GRANT)
    if therapist is None:
        raise ValidationError({"therapist": "No such account; give the username of a therapist of the referral's provider."})
    refuse_client_data_grant_to(therapist, field="therapist")
    profile = clinician_profile_of(therapist)
    if profile is None or profile.organisation_id != referral.provider_id:
        raise ValidationError({"therapist": "Only a therapist or clinical lead of the referral's provider can be assigned."})
    # The grant event above records this assignment; its rows are not logged again as authorisation changes.
    with account_events.firewall_operation():
        for codename in (VIEW, CHANGE):
            assign_perm(f"consent.{codename}", therapist, referral)
    record_allowed(context, referral, action=Action.GRANT, purpose=f"assigned {therapist.get_username()}")
    return referral


@transaction.atomic
def unassign_therapist(context: AccessContext, referral_id=None, therapist: User | None = None, *,
                       referral: Referral | None = None) -> Referral:  # fmt: skip
    """Revoke a therapist's direct access to a referral: one event, the revoke (or its refusal)."""
    username = therapist.get_username() if therapist else ""
    referral = open_to_act(context, referral_id, referral=referral, purpose=Purpose.ASSIGN, action=Action.REVOKE)
    # Only a direct assignment is revoked here; the team group's grant stays with the team.
    if therapist is None or not ReferralUserObjectPermission.objects.filter(user=therapist, content_object=referral).exists():
        raise ValidationError({"therapist": f"{username or 'That account'} is not assigned to this referral."})
    with account_events.firewall_operation():
        for codename in (VIEW, CHANGE):
            remove_perm(f"consent.{codename}", therapist, referral)
    record_allowed(context, referral, action=Action.REVOKE, purpose=f"unassigned {username}")
    return referral


def assigned_therapists(referral: Referral) -> QuerySet:
    """Users granted this referral directly (its assignment)."""
    return User.objects.filter(
        Exists(
            ReferralUserObjectPermission.objects.filter(user=OuterRef("pk"), content_object=referral, permission__codename=VIEW)
        )
    ).order_by("username")


def may_act_on(user: User, referral: Referral, purpose: Purpose) -> bool:
    """Whether this user may do this to this referral (one query)."""
    return referrals_visible_to(user, purpose).filter(pk=referral.pk).exists()


__all__ = [
    "Purpose", "ReferralNotFound", "ClientDataRefused", "GrantRefused", "refuse_client_data_grant_to",
    "referrals_visible_to", "open_referral", "break_glass", "refuse_list_if_not_allowed", "refuse_benefits_agency",
    "record_listed",
    "record_allowed", "grant_on_creation", "assign_therapist", "unassign_therapist", "assigned_therapists",
    "may_act_on", "log_refusal", "Refusal", "require_opened", "open_to_act", "open_for_break_glass",
]  # fmt: skip
