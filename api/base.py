"""The base class of every client-data view: its rows come only through the firewall."""

from django.db.models import QuerySet
from rest_framework.viewsets import GenericViewSet

from api.context import access_context
from consent.access import firewall
from consent.access.models import Action


class ClientDataViewSet(GenericViewSet):
    """Client-data views get their queryset and objects from consent.access.firewall, never directly.

    Subclasses say what they read in `safely_get_queryset` (a Referral queryset that the firewall then
    filters) and which firewall purpose each action serves in `purposes`. Overriding `get_queryset` or
    `get_object`, or setting `queryset`, is refused when the class is defined, so nobody routes around
    the firewall by accident. A reviewed exception must be named `dangerously_...`.
    """

    purposes: dict[str, firewall.Purpose] = {}
    actions_logged_as: dict[str, str] = {}
    lookup_value_regex = "[^/]+"  # Any id is looked up through the firewall, so a bad one is a logged 404.

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "get_object"):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(): client-data views reach rows only through the firewall. "
                    f"Implement safely_get_queryset() instead."
                )
        if cls.__dict__.get("queryset") is not None:
            raise TypeError(f"{cls.__name__} sets queryset: implement safely_get_queryset() instead.")

    def safely_get_queryset(self) -> QuerySet:
        raise NotImplementedError

    def purpose(self) -> firewall.Purpose:
        return self.purposes.get(self.action, firewall.Purpose.VIEW)

    def get_queryset(self):
        return firewall.referrals_visible_to(self.request.user, self.purpose(), base=self.safely_get_queryset())

    def get_object(self):
        referral = firewall.open_referral(
            access_context(self.request),
            self.kwargs[self.lookup_url_kwarg or self.lookup_field],
            purpose=self.purpose(),
            action=self.actions_logged_as.get(self.action, Action.READ),
            base=self.safely_get_queryset(),
        )
        return referral

    def list_through_firewall(self, request):
        """Refuse a benefits-agency account as a whole; otherwise one access event per row shown."""
        context = access_context(request)
        firewall.refuse_list_if_not_allowed(context)
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        firewall.record_listed(context, rows)
        return rows
