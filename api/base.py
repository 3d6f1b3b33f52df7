"""The base class of every client-data view: its rows come only through the firewall, and a referral is opened
before anything else of the request is read (docs/architecture.md, "The one way to a referral")."""

from django.db.models import QuerySet
from rest_framework.viewsets import GenericViewSet

from api.context import access_context
from api.query import DeclaredQueryOnly
from consent.access import firewall
from consent.access.models import Action
from consent.models import Referral

# The methods through which rows reach a view. A subclass that brings its own version of any of them, whether
# written in its body or inherited from a mixin listed before this base, could hand out rows the firewall
# never filtered: filter_queryset is handed the firewall's queryset and could return another one. (Denied
# access events of a refused request are kept by the project's exception handler, api.errors, for every view.)
LOCKED_METHODS = ("get_queryset", "get_object", "list_through_firewall", "filter_queryset", "open_referral")


def _refuse_bypass(cls) -> None:
    for name in LOCKED_METHODS:
        # Compared through the MRO, not only the class body, so a mixin cannot bring an override in.
        if getattr(cls, name) is not getattr(ClientDataViewSet, name):
            raise TypeError(
                f"{cls.__name__} overrides {name}(): client-data views reach rows only through the firewall. "
                f"Implement safely_get_queryset() instead."
            )
    if getattr(cls, "queryset", None) is not None:
        raise TypeError(f"{cls.__name__} sets queryset: implement safely_get_queryset() instead.")


class ClientDataViewSet(DeclaredQueryOnly, GenericViewSet):
    """Client-data views get their queryset and objects from consent.access.firewall, never directly.

    Subclasses say what they read in `safely_get_queryset` (a Referral queryset that the firewall then
    filters) and which firewall purpose each action serves in `purposes`. Overriding `get_queryset`,
    `get_object` or `filter_queryset`, or setting `queryset`, is refused when the class is defined (and
    again on each request, against a method patched on later), so nobody routes around the firewall by
    accident. Filtering is configured with `filterset_class`, which runs inside the firewall's queryset.
    """

    purposes: dict[str, firewall.Purpose] = {}
    # The firewall refuses a benefits-agency account before anything else, the query included.
    refuses_benefits_agency_first = True
    path_parameter_schemas = {
        "id": {"type": "string", "format": "uuid", "description": "The referral's id."},
        "record_id": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1, "description": "The record's id."},
    }
    actions_logged_as: dict[str, str] = {}
    # Actions that write on the referral: it is opened locked, and the service logs the allowed action once done.
    writes: frozenset[str] = frozenset()
    # Actions opened by break-glass (a clinical lead outside their assignment) rather than by their grants.
    breaks_glass: frozenset[str] = frozenset()
    # Actions whose access events carry a stated purpose (a subject-access request, say).
    context_purposes: dict[str, str] = {}
    lookup_value_regex = "[^/]+"  # Any id is looked up through the firewall, so a bad one is a logged 404.

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _refuse_bypass(cls)

    def initial(self, request, *args, **kwargs):
        """Authenticate, check permissions and throttles, then open the referral of an action on one.

        So the firewall answers before any body is parsed: a referral the user may not reach is a logged 404,
        whatever the body says, and nobody learns anything from validation messages about it.
        """
        _refuse_bypass(type(self))
        super().initial(request, *args, **kwargs)
        self.access = access_context(request, purpose=self.context_purposes.get(self.action, ""))
        self.referral = self.open_referral() if self.detail and callable(getattr(self, self.action or "", None)) else None

    def open_referral(self):
        """The referral of /referrals/{id}/..., opened by the firewall for this action's purpose (or a logged 404)."""
        referral_id = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        if self.action in self.breaks_glass:
            return firewall.open_for_break_glass(self.access, referral_id, base=self._base())
        if self.action in self.writes:
            return firewall.open_to_act(self.access, referral_id, purpose=self.purpose(), action=self.logged_as())
        return firewall.open_referral(
            self.access, referral_id, purpose=self.purpose(), action=self.logged_as(), base=self._base()
        )

    def logged_as(self) -> str:
        return self.actions_logged_as.get(self.action, Action.READ)

    def safely_get_queryset(self) -> QuerySet:
        raise NotImplementedError

    def purpose(self) -> firewall.Purpose:
        return self.purposes.get(self.action, firewall.Purpose.VIEW)

    def _base(self) -> QuerySet:
        base = self.safely_get_queryset()
        # The firewall filters referrals; any other queryset would pass through it unfiltered or break.
        if not isinstance(base, QuerySet) or base.model is not Referral:
            raise TypeError(f"{type(self).__name__}.safely_get_queryset() must return a Referral queryset.")
        return base

    def get_queryset(self):
        return firewall.referrals_visible_to(self.request.user, self.purpose(), base=self._base())

    def get_object(self):
        """The referral the base view opened for this action (see initial)."""
        if self.referral is None:
            raise TypeError(f"{type(self).__name__}.{self.action} is not an action on one referral.")
        return self.referral

    def list_through_firewall(self, request):
        """Refuse a benefits-agency account as a whole; otherwise one access event per row shown."""
        context = access_context(request)
        firewall.refuse_list_if_not_allowed(context)
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        firewall.record_listed(context, rows)
        return rows
