"""Sites, pilots and consent templates: no client data, readable by every signed-in account."""

from rest_framework import serializers
from rest_framework.viewsets import ReadOnlyModelViewSet

from colocation import selectors
from colocation.models import Organisation, Pilot, Site
from consent.models import ConsentTemplate
from consent.selectors import consent_templates_in_force
from consent.services import may_record_referrals


class OrganisationOutput(serializers.ModelSerializer):
    class Meta:
        model = Organisation
        fields = ["id", "name", "kind", "ods_code"]


class SeparationOutput(serializers.Serializer):
    separate_room_or_floor = serializers.BooleanField()
    separate_entrance = serializers.BooleanField()
    separate_signage_and_publicity = serializers.BooleanField()
    separate_it_and_records = serializers.BooleanField()
    no_benefits_agency_staff_in_sessions = serializers.BooleanField()
    last_reviewed = serializers.DateField(source="separation_last_reviewed", allow_null=True)


class SiteOutput(serializers.ModelSerializer):
    host_organisation = OrganisationOutput()
    provider = OrganisationOutput()
    separation = SeparationOutput(source="*")

    class Meta:
        model = Site
        fields = ["id", "name", "venue_kind", "host_organisation", "provider", "postcode_district",
                  "active_from", "active_to", "separation"]  # fmt: skip


class SiteViewSet(ReadOnlyModelViewSet):
    serializer_class = SiteOutput

    def get_queryset(self):
        return selectors.sites_list()


class PilotSiteRef(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "name"]


class PilotOutput(serializers.ModelSerializer):
    sites = PilotSiteRef(many=True)
    overseen_by = OrganisationOutput(many=True)

    class Meta:
        model = Pilot
        fields = ["id", "name", "starts_on", "ends_on", "cadence", "sites", "overseen_by"]


class PilotViewSet(ReadOnlyModelViewSet):
    serializer_class = PilotOutput

    def get_queryset(self):
        return selectors.pilots_list()


class ConsentTemplateOutput(serializers.ModelSerializer):
    class Meta:
        model = ConsentTemplate
        fields = ["id", "code", "version", "title", "body", "body_sha256", "effective_from", "effective_to", "language"]


class ConsentTemplateViewSet(ReadOnlyModelViewSet):
    """Templates in force, for therapists and clinical leads recording consent."""

    serializer_class = ConsentTemplateOutput

    def get_queryset(self):
        if not may_record_referrals(self.request.user):
            return ConsentTemplate.objects.none()
        return consent_templates_in_force()
