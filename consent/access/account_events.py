"""Access events about accounts rather than clients: sign-in and sign-out, and every change to who may see what.

The rules live here, in plain functions; consent.access.signals only hooks Django's signals to them, so the
same rule holds whichever door a change comes through (the token endpoint, the admin's session login, the
browsable API, the admin's forms, a service, a management command, the ORM in a shell).

Which chains an account event goes on: its organisation's, as the firewall decides for a refusal. A therapy
provider's own chain; for a benefits agency, the chains of the providers co-located with it (their DPOs are
the ones who must know); for a professional body, the providers of the pilots it oversees; otherwise the
organisation's own chain.
"""

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.db import transaction

from colocation.models import Organisation, OrganisationKind, Site, User
from colocation.selectors import organisation_of
from consent.access.log import AccessContext, AlertReason, EventDraft, record_access
from consent.access.models import AccessEvent, Action, Outcome

# The request being served, set by api.middleware.RequestIdMiddleware: the actor of a change made during it.
_serving: ContextVar = ContextVar("consent_access_serving", default=None)
# Set while the firewall itself grants or revokes (a referral's creation, a lead's assignment): those are
# already access events of their own (create, grant, revoke), so the rows they write are not logged again.
_firewall_operation: ContextVar[bool] = ContextVar("consent_access_firewall_operation", default=False)


@contextmanager
def serving(request) -> Iterator[None]:
    token = _serving.set(request)
    try:
        yield
    finally:
        _serving.reset(token)


@contextmanager
def firewall_operation() -> Iterator[None]:
    token = _firewall_operation.set(True)
    try:
        yield
    finally:
        _firewall_operation.reset(token)


def serving_a_request() -> bool:
    """Whether a request is being served (through the project's middleware), as opposed to a command or a shell."""
    return _serving.get() is not None


def in_firewall_operation() -> bool:
    return _firewall_operation.get()


def current_context() -> AccessContext:
    """Who is making a change now: the signed-in user of the request being served, or the system (a shell)."""
    request = _serving.get()
    if request is None:
        return AccessContext(user=None, request_id=uuid.uuid4().hex, method="", path="")
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        user = None
    return AccessContext.for_request(request, user=user)


# ---- whose chains -------------------------------------------------------------------------------------------


def chains_of_organisation(organisation: Organisation | None) -> list[Organisation]:
    """The provider chains whose DPOs must know about an account of this organisation."""
    if organisation is None:
        return []
    if organisation.kind == OrganisationKind.THERAPY_PROVIDER:
        return [organisation]
    if organisation.kind == OrganisationKind.BENEFITS_AGENCY:
        provider_ids = Site.objects.filter(host_organisation=organisation).values("provider_id")
    elif organisation.kind == OrganisationKind.PROFESSIONAL_BODY:
        provider_ids = Site.objects.filter(pilots__overseen_by=organisation).values("provider_id")
    else:
        provider_ids = None
    providers = list(Organisation.objects.filter(pk__in=provider_ids).order_by("pk")) if provider_ids is not None else []
    return providers or [organisation]


def every_provider() -> list[Organisation]:
    return list(Organisation.objects.filter(kind=OrganisationKind.THERAPY_PROVIDER).order_by("pk"))


def _distinct(chains: Iterable[Organisation]) -> list[Organisation]:
    seen: dict[int, Organisation] = {}
    for chain in chains:
        seen.setdefault(chain.pk, chain)
    return [seen[pk] for pk in sorted(seen)]


def _dpos_chains(chains: Iterable[Organisation]) -> list[Organisation]:
    """The providers' chains among these: where a DPO reads, and so where an alert is seen."""
    return [chain for chain in _distinct(chains) if chain.kind == OrganisationKind.THERAPY_PROVIDER]


# ---- sign-in and sign-out -----------------------------------------------------------------------------------


@transaction.atomic
def record_sign_in(*, context: AccessContext, user: User, succeeded: bool) -> list[AccessEvent]:
    """A sign-in or a failed sign-in of a known account, through any door, on its organisation's chains.

    In the request's transaction where there is one (a sign-in whose event cannot be written fails with it),
    else in its own.
    """
    drafts = [
        EventDraft(
            chain=chain,
            action=Action.SIGN_IN if succeeded else Action.SIGN_IN_FAILED,
            outcome=Outcome.ALLOWED if succeeded else Outcome.DENIED,
            status=200 if succeeded else 400,
            object_type="user",
            object_id=str(user.pk),
        )
        for chain in chains_of_organisation(organisation_of(user))
    ]
    return record_access(_as(context, user), drafts)


def record_failed_sign_in(*, context: AccessContext, username: str) -> list[AccessEvent]:
    """A failed sign-in naming an account that exists; a name that matches no account has no chain to go on."""
    user = User.objects.select_related("staff_profile__organisation").filter(username=str(username or "")[:150]).first()
    if user is None:
        return []
    return record_sign_in(context=context, user=user, succeeded=False)


@transaction.atomic
def record_sign_out(*, context: AccessContext, user: User) -> list[AccessEvent]:
    """A sign-out (one token, every token, or a session: the event's path says which), on the account's chains."""
    drafts = [
        EventDraft(
            chain=chain, action=Action.SIGN_OUT, outcome=Outcome.ALLOWED, status=204, object_type="user", object_id=str(user.pk)
        )  # fmt: skip
        for chain in chains_of_organisation(organisation_of(user))
    ]
    return record_access(_as(context, user), drafts)


def _as(context: AccessContext, user: User) -> AccessContext:
    """The event's actor is the account signing in or out, whoever the request says is signed in at the time."""
    return AccessContext(
        user=user, request_id=context.request_id, client_request_id=context.client_request_id,
        method=context.method, path=context.path, purpose=context.purpose,
    )  # fmt: skip


# ---- changes to who may see what ----------------------------------------------------------------------------


@dataclass
class AuthorisationChange:
    """One change to who may see what, described in values the log may keep (ids, flags, enumerations)."""

    object_type: str  # "user", "organisation", "consent_template" or "referral"
    object_id: str
    changes: list[str]  # e.g. ["is_superuser false->true", "organisation 3->5"]
    chains: list[Organisation] = field(default_factory=list)
    action: str = Action.AUTHORISATION_CHANGE
    client_pseudonym: uuid.UUID | None = None
    referral_id: uuid.UUID | None = None


def record_authorisation_change(change: AuthorisationChange, *, context: AccessContext | None = None) -> list[AccessEvent]:
    """Every change to who may see what is an access event on the chains concerned, and an alert for their DPOs.

    Written in the transaction of the change itself (the callers' saves are atomic): if the event cannot be
    written, the change does not happen either. Only providers' chains take it (a DPO reads them); with none
    concerned (an account of no organisation, an organisation of no provider's), the chains of the actor's
    organisation, and failing that every provider's: a superuser made in a shell concerns them all.
    """
    if not change.changes:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("An authorisation change must be saved in a transaction, so its access event commits with it.")
    context = context or current_context()
    chains = (
        _dpos_chains(change.chains) or _dpos_chains(chains_of_organisation(organisation_of(context.user))) or every_provider()
    )
    drafts = [
        EventDraft(
            chain=chain,
            action=change.action,
            outcome=Outcome.ALLOWED,
            status=None,
            object_type=change.object_type,
            object_id=change.object_id,
            client_pseudonym=change.client_pseudonym,
            referral_id=change.referral_id,
            purpose="; ".join(change.changes)[:500],
            extra_alerts=[AlertReason.AUTHORISATION_CHANGE],
        )
        for chain in chains
    ]
    return record_access(context, drafts)
