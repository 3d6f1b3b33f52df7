"""A client-data view cannot be written that skips the firewall by accident.

ClientDataViewSet refuses, when a subclass is defined, any class that brings its own queryset, object
lookup or filtering, whether in its own body, from a mixin or from a parent; and it checks again on each
request, against a method patched onto the class later.
"""

import pytest
from django.db.models import QuerySet
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from api.base import LOCKED_METHODS, ClientDataViewSet
from colocation.models import Site
from consent.models import Referral


def _define(name, bases, body):
    """Define a class the way a `class` statement would, so __init_subclass__ runs as it does in code."""
    return type(name, bases, dict(body))


def _everything(self, *args, **kwargs):
    return Referral.objects.all()


@pytest.mark.parametrize("method", LOCKED_METHODS)
def test_it_refuses_a_subclass_that_overrides_a_locked_method_in_its_body(method):
    with pytest.raises(TypeError, match=f"overrides {method}"):
        _define("Leaky", (ClientDataViewSet,), {method: _everything})


def test_it_refuses_a_subclass_that_overrides_get_queryset():
    with pytest.raises(TypeError, match="overrides get_queryset"):

        class Leaky(ClientDataViewSet):
            def get_queryset(self):
                return Referral.objects.all()


def test_it_refuses_a_subclass_that_overrides_get_object():
    with pytest.raises(TypeError, match="overrides get_object"):

        class Leaky(ClientDataViewSet):
            def get_object(self):
                return Referral.objects.get(pk=self.kwargs["pk"])


def test_it_refuses_a_subclass_that_sets_queryset():
    with pytest.raises(TypeError, match="sets queryset"):

        class Leaky(ClientDataViewSet):
            queryset = Referral.objects.all()


def test_it_refuses_an_override_brought_in_by_a_mixin():
    class EverythingMixin:
        def get_queryset(self):
            return Referral.objects.all()

    with pytest.raises(TypeError, match="overrides get_queryset"):

        class Leaky(EverythingMixin, ClientDataViewSet):
            pass


def test_it_refuses_a_queryset_brought_in_by_a_mixin():
    class QuerysetMixin:
        queryset = Referral.objects.all()

    with pytest.raises(TypeError, match="sets queryset"):

        class Leaky(QuerysetMixin, ClientDataViewSet):
            pass


def test_it_refuses_an_override_in_a_grandchild_of_an_accepted_view():
    class Accepted(ClientDataViewSet):
        def safely_get_queryset(self) -> QuerySet:
            return Referral.objects.all()

    with pytest.raises(TypeError, match="overrides filter_queryset"):

        class Leaky(Accepted):
            def filter_queryset(self, queryset):
                return Referral.objects.all()


def test_it_accepts_a_view_that_reads_through_safely_get_queryset():
    class Fine(ClientDataViewSet):
        filterset_fields = ["status"]

        def safely_get_queryset(self) -> QuerySet:
            return Referral.objects.select_related("site")

    assert Fine.get_queryset is ClientDataViewSet.get_queryset


class _Probe(ClientDataViewSet):
    def safely_get_queryset(self) -> QuerySet:
        return Referral.objects.all()

    @action(detail=False, methods=["get"])
    def rows(self, request):
        return Response([str(r.pk) for r in self.get_queryset()])


def _call(view_class, user):
    request = APIRequestFactory().get("/probe/rows/")
    force_authenticate(request, user=user)
    return view_class.as_view({"get": "rows"})(request)


def test_its_queryset_is_the_firewalls_whatever_safely_get_queryset_returns(world):
    # safely_get_queryset returns every referral; the firewall still narrows it to the user's own.
    assert _call(_Probe, world.therapist).data == [str(world.referral.pk)]
    assert _call(_Probe, world.other_provider_therapist).data == [str(world.medway_referral.pk)]
    assert _call(_Probe, world.dpo).data == []


def test_it_refuses_a_queryset_of_another_model_at_request_time(world):
    class WrongModel(ClientDataViewSet):
        def safely_get_queryset(self) -> QuerySet:
            return Site.objects.all()

        @action(detail=False, methods=["get"])
        def rows(self, request):
            return Response([str(r.pk) for r in self.get_queryset()])

    with pytest.raises(TypeError, match="must return a Referral queryset"):
        _call(WrongModel, world.therapist)


def test_it_refuses_a_method_patched_onto_the_class_after_it_was_defined(world, monkeypatch):
    class Patched(_Probe):
        pass

    monkeypatch.setattr(Patched, "get_queryset", _everything)
    with pytest.raises(TypeError, match="overrides get_queryset"):
        _call(Patched, world.therapist)
