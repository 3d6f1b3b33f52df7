"""factory-boy factories for the world the tests stand in."""

from datetime import date, datetime, time

import factory
from django.utils import timezone

from colocation.models import Organisation, OrganisationKind, Pilot, Site, VenueKind
from consent.models import ConsentTemplate

ACKNOWLEDGED = {
    "attendance_is_optional": True,
    "no_effect_on_benefits": True,
    "service_separate_from_jobcentre": True,
    "nothing_shared_with_jobcentre": True,
    "free_to_withdraw": True,
}


def at(day: date, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Organisation {n}")
    kind = OrganisationKind.THERAPY_PROVIDER


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    name = factory.Sequence(lambda n: f"Site {n}")
    venue_kind = VenueKind.JOBCENTRE
    host_organisation = factory.SubFactory(OrganisationFactory, kind=OrganisationKind.BENEFITS_AGENCY)
    provider = factory.SubFactory(OrganisationFactory)
    postcode_district = "CT1"
    active_from = date(2025, 1, 1)
    separate_room_or_floor = True
    separate_entrance = True
    separate_signage_and_publicity = True
    separate_it_and_records = True
    no_benefits_agency_staff_in_sessions = True
    separation_last_reviewed = date(2026, 5, 1)


class PilotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pilot

    name = factory.Sequence(lambda n: f"Pilot {n}")
    starts_on = date(2026, 1, 1)
    ends_on = date(2026, 12, 31)


class ConsentTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentTemplate

    code = "colocation-intake"
    version = factory.Sequence(lambda n: n + 1)
    title = "Talking therapies at a co-located clinic"
    body = "Coming to therapy is your choice. Nothing is shared with the Jobcentre."
    effective_from = date(2025, 1, 1)
