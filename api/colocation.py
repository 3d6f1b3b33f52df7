"""Sites, pilots and consent templates: no client data, readable by every signed-in account."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.viewsets import ReadOnlyModelViewSet

from api.query import DeclaredQueryOnly
from api.schema import ACCOUNT, LEAD, REVIEWER, THERAPIST
from colocation import selectors
from colocation.models import Organisation, Pilot, Site
from consent.models import ConsentTemplate
from consent.selectors import consent_templates_in_force
from consent.services import may_record_referrals


class OrganisationOutput(serializers.ModelSerializer):
    """An organisation: a therapy provider, a benefits agency, a professional body..."""

    class Meta:
        model = Organisation
        fields = ["id", "name", "kind", "ods_code"]


class SeparationOutput(serializers.Serializer):
    """The site's separation checklist: what keeps the clinic apart from the benefits agency."""

    separate_room_or_floor = serializers.BooleanField()
    separate_entrance = serializers.BooleanField()
    separate_signage_and_publicity = serializers.BooleanField()
    separate_it_and_records = serializers.BooleanField()
    no_benefits_agency_staff_in_sessions = serializers.BooleanField()
    last_reviewed = serializers.DateField(source="separation_last_reviewed", allow_null=True)


class SiteOutput(serializers.ModelSerializer):
    """An outreach site: where the clinic is, who hosts it, who provides it, and how it is kept separate."""

    host_organisation = OrganisationOutput()
    provider = OrganisationOutput()
    separation = SeparationOutput(source="*")

    class Meta:
        model = Site
        fields = ["id", "name", "venue_kind", "host_organisation", "provider", "postcode_district",
                  "active_from", "active_to", "separation"]  # fmt: skip


@extend_schema_view(
    list=extend_schema(
        tags=[ACCOUNT, THERAPIST],
        summary="Sites",
        description="Every outreach site with its host, its provider and its separation checklist. Holds no client data.",
    ),
    retrieve=extend_schema(tags=[ACCOUNT, THERAPIST], summary="One site", description="A site and its separation checklist."),
)
class SiteViewSet(DeclaredQueryOnly, ReadOnlyModelViewSet):
    serializer_class = SiteOutput

    def get_queryset(self):
        return selectors.sites_list()


class PilotSiteRef(serializers.ModelSerializer):
    """A site of the pilot (see /api/v1/sites/)."""

    class Meta:
        model = Site
        fields = ["id", "name"]


class PilotOutput(serializers.ModelSerializer):
    """A pilot: its sites, its dates and reporting cadence, and the professional bodies overseeing it."""

    sites = PilotSiteRef(many=True)
    overseen_by = OrganisationOutput(many=True)

    class Meta:
        model = Pilot
        fields = ["id", "name", "starts_on", "ends_on", "cadence", "sites", "overseen_by"]


@extend_schema_view(
    list=extend_schema(
        tags=[ACCOUNT, REVIEWER],
        summary="Pilots",
        description="Every pilot with its sites and the professional bodies that oversee it. Holds no client data.",
    ),
    retrieve=extend_schema(tags=[ACCOUNT, REVIEWER], summary="One pilot", description="A pilot, its sites and its overseers."),
)
class PilotViewSet(DeclaredQueryOnly, ReadOnlyModelViewSet):
    serializer_class = PilotOutput

    def get_queryset(self):
        return selectors.pilots_list()


class ConsentTemplateOutput(serializers.ModelSerializer):
    """A consent template version: the text the client is shown, with its SHA-256. Immutable once used."""

    class Meta:
        model = ConsentTemplate
        fields = ["id", "code", "version", "title", "body", "body_sha256", "effective_from", "effective_to", "language"]


@extend_schema_view(
    list=extend_schema(
        tags=[THERAPIST, LEAD],
        summary="Consent templates in force",
        description="The templates a therapist or clinical lead may record consent against today; empty for anyone else.",
    ),
    retrieve=extend_schema(
        tags=[THERAPIST, LEAD], summary="One consent template in force", description="Its text, version and SHA-256."
    ),
)
class ConsentTemplateViewSet(DeclaredQueryOnly, ReadOnlyModelViewSet):
    """Templates in force, for therapists and clinical leads recording consent."""

    serializer_class = ConsentTemplateOutput

    def get_queryset(self):
        if not may_record_referrals(self.request.user):
            return consent_templates_in_force().none()
        return consent_templates_in_force()
