"""The base class of every client-data view: its rows come only through the firewall."""

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
LOCKED_METHODS = ("get_queryset", "get_object", "list_through_firewall", "filter_queryset")


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
    lookup_value_regex = "[^/]+"  # Any id is looked up through the firewall, so a bad one is a logged 404.

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _refuse_bypass(cls)

    def initial(self, request, *args, **kwargs):
        _refuse_bypass(type(self))
        super().initial(request, *args, **kwargs)

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
        return firewall.open_referral(
            access_context(self.request),
            self.kwargs[self.lookup_url_kwarg or self.lookup_field],
            purpose=self.purpose(),
            action=self.actions_logged_as.get(self.action, Action.READ),
            base=self._base(),
        )

    def list_through_firewall(self, request):
        """Refuse a benefits-agency account as a whole; otherwise one access event per row shown."""
        context = access_context(request)
        firewall.refuse_list_if_not_allowed(context)
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        firewall.record_listed(context, rows)
        return rows
