"""Referral endpoints: thin views that parse, call consent services and the firewall, and render."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from api.base import ClientDataViewSet
from api.context import access_context
from api.fields import ChoiceField, StrictSerializer, TextField, parser_classes
from colocation.models import Site
from consent import selectors, services
from consent.access import firewall
from consent.access.models import Action
from consent.models import (
    ACKNOWLEDGEMENTS,
    CheckStage,
    ConsentMethod,
    ConsentScope,
    ConsentTemplate,
    DischargeReason,
    GoalRaisedBy,
    HowHeard,
    Pathway,
    ReferralStatus,
    WithdrawalReason,
)
from consent.source_of_referral import SOURCE_OF_REFERRAL

# ---- input --------------------------------------------------------------------------------------------


def accepted_values(field) -> str:
    """What a field accepts, in words a person can act on, for the message of a missing field."""
    if field.help_text:
        return str(field.help_text)
    if isinstance(field, serializers.ChoiceField):
        return "one of: " + ", ".join(map(str, field.choices))
    if isinstance(field, serializers.DateTimeField):
        return "a date and time in ISO 8601 with its time zone, e.g. 2026-09-14T10:05:00Z"
    if isinstance(field, serializers.DateField):
        return "a date as YYYY-MM-DD, e.g. 2026-09-14"
    if isinstance(field, serializers.BooleanField):
        return "true or false"
    if isinstance(field, serializers.IntegerField):
        return "a whole number"
    if isinstance(field, serializers.ListField):
        return "a list"
    if isinstance(field, serializers.Serializer):
        return "an object with the fields " + ", ".join(field.fields)
    return "text"


class ExplainedInput(StrictSerializer):
    """A strict input whose 'required' messages also say what the field accepts."""

    def get_fields(self):
        fields = super().get_fields()
        for name, field in fields.items():
            field.error_messages["required"] = f"{name} is required: give {accepted_values(field)}."
            field.error_messages["null"] = f"{name} may not be null: give {accepted_values(field)}."
            field.error_messages["blank"] = f"{name} may not be blank: give {accepted_values(field)}."
        return fields


class ClientInput(ExplainedInput):
    local_reference = TextField(
        max_length=64, help_text="the provider's own reference for the client, as in its case-management system"
    )
    nhs_number = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    year_of_birth = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1900, max_value=2100)


class ReferralInput(ExplainedInput):
    client = ClientInput()
    site = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="the id of one of your organisation's sites (see /api/v1/sites/)"
    )
    referred_on = serializers.DateField()
    source_of_referral = ChoiceField(choices=list(SOURCE_OF_REFERRAL))
    how_heard = ChoiceField(choices=HowHeard.choices)
    pathway = ChoiceField(choices=Pathway.choices)


class AcknowledgementsInput(ExplainedInput):
    attendance_is_optional = serializers.BooleanField(required=False, default=False)
    no_effect_on_benefits = serializers.BooleanField(required=False, default=False)
    service_separate_from_jobcentre = serializers.BooleanField(required=False, default=False)
    nothing_shared_with_jobcentre = serializers.BooleanField(required=False, default=False)
    free_to_withdraw = serializers.BooleanField(required=False, default=False)


class ConsentInput(ExplainedInput):
    template = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="the id of a consent template in force (see /api/v1/consent-templates/)"
    )
    method = ChoiceField(choices=ConsentMethod.choices)
    given_at = serializers.DateTimeField()
    # Not required here: the service lists what is missing (the treatment scope, each acknowledgement) by name.
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=20, required=False, default=list,
        help_text=f"a list of scopes from: {', '.join(ConsentScope.values)}; treatment is required",
    )  # fmt: skip
    acknowledgements = AcknowledgementsInput(required=False, default=dict)
    supersedes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class WithdrawalInput(ExplainedInput):
    withdrawn_at = serializers.DateTimeField()
    reason = ChoiceField(choices=WithdrawalReason.choices)
    supersedes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class CheckInput(ExplainedInput):
    checked_at = serializers.DateTimeField()
    stage = ChoiceField(choices=CheckStage.choices)
    told_attendance_required = serializers.BooleanField()
    sanction_mentioned = serializers.BooleanField()
    feels_free_to_stop = serializers.BooleanField()
    goals_set_by_client = serializers.BooleanField()
    employment_goal_raised_by = ChoiceField(choices=GoalRaisedBy.choices)
    supersedes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class DischargeInput(ExplainedInput):
    discharged_on = serializers.DateField()
    reason = ChoiceField(choices=DischargeReason.choices)


class DeclineInput(ExplainedInput):
    declined_on = serializers.DateField()


class BreakGlassInput(ExplainedInput):
    reason = TextField(max_length=500)


class AssignmentInput(ExplainedInput):
    therapist = serializers.CharField(max_length=150, help_text="Username of a therapist of the same provider.")


# ---- output -------------------------------------------------------------------------------------------


# OWASP API3, broken object property level authorisation: the client fields each kind of access may see, as an
# allow-list. Anything not listed is dropped, whatever the serializer declares.
#  - assigned: the therapist and the team the referral is granted to, who treat the client, see every identifier.
#  - break_glass: a clinical lead outside the assignment (a safeguarding concern, say) sees the clinical record
#    and the provider's own local reference, which is enough to find the person in the provider's systems and
#    act; not the NHS number, a national identifier that links the person across services and that the lead
#    does not need to read the record. A lead who must act on it assigns themselves: an audited grant.
# Any other access never reaches these serializers (the firewall answers 404); if one did, it gets the
# narrowest list.
CLIENT_FIELDS_BY_ACCESS = {
    "assigned": ("id", "local_reference", "nhs_number", "year_of_birth"),
    "break_glass": ("id", "local_reference", "year_of_birth"),
}
NARROWEST_ACCESS = "break_glass"


def _access_of(serializer) -> str:
    access = serializer.context.get("access")
    return access if access in CLIENT_FIELDS_BY_ACCESS else NARROWEST_ACCESS


class ClientOutput(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    local_reference = serializers.CharField(read_only=True)
    # Not read_only, so the schema can say it may be absent; this serializer only ever renders.
    nhs_number = serializers.CharField(required=False, help_text="Only for the assigned team; absent under break-glass.")
    year_of_birth = serializers.IntegerField(read_only=True, allow_null=True)

    def to_representation(self, instance):
        allowed = CLIENT_FIELDS_BY_ACCESS[_access_of(self)]
        return {name: value for name, value in super().to_representation(instance).items() if name in allowed}


class SiteRef(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class VoluntarinessOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=selectors.Voluntariness.ALL, read_only=True)
    reasons = serializers.ListField(child=serializers.CharField(), read_only=True)


class ReferralOutput(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    client = ClientOutput(read_only=True)
    site = SiteRef(read_only=True)
    referred_on = serializers.DateField(read_only=True)
    source_of_referral = serializers.CharField(read_only=True)
    how_heard = serializers.CharField(read_only=True)
    pathway = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=ReferralStatus.choices, read_only=True)
    voluntariness = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(VoluntarinessOutput)
    def get_voluntariness(self, referral) -> dict:
        return selectors.voluntariness_of(referral).as_dict()

    def to_representation(self, referral):
        data = super().to_representation(referral)
        if referral.client_known_at_intake and isinstance(data.get("client"), dict):
            # Recorded for a client its recorder could not see: only what was typed at this intake, never the
            # identifiers held (the same answer whether they match or not).
            typed = {"nhs_number": referral.intake_nhs_number, "year_of_birth": referral.intake_year_of_birth}
            data["client"].update({name: value for name, value in typed.items() if name in data["client"]})
        return data


class TemplateRef(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    code = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)
    language = serializers.CharField(read_only=True)
    body_sha256 = serializers.CharField(read_only=True)


class ConsentOutput(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    template = TemplateRef(read_only=True)
    given_at = serializers.DateTimeField(read_only=True)
    method = serializers.CharField(read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)
    acknowledgements = serializers.SerializerMethodField()
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)
    recorded_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(serializers.DictField(child=serializers.BooleanField()))
    def get_acknowledgements(self, record) -> dict:
        return {name: getattr(record, name) for name in ACKNOWLEDGEMENTS}


class WithdrawalOutput(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    withdrawn_at = serializers.DateTimeField(read_only=True)
    reason = serializers.CharField(read_only=True)
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class CheckOutput(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    checked_at = serializers.DateTimeField(read_only=True)
    stage = serializers.CharField(read_only=True)
    told_attendance_required = serializers.BooleanField(read_only=True)
    sanction_mentioned = serializers.BooleanField(read_only=True)
    feels_free_to_stop = serializers.BooleanField(read_only=True)
    goals_set_by_client = serializers.BooleanField(read_only=True)
    employment_goal_raised_by = serializers.CharField(read_only=True)
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class DischargeOutput(serializers.Serializer):
    discharged_on = serializers.DateField(read_only=True)
    reason = serializers.CharField(read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class DeclineOutput(serializers.Serializer):
    declined_on = serializers.DateField(read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class ReferralDetailOutput(ReferralOutput):
    consents = ConsentOutput(many=True, read_only=True)
    withdrawals = WithdrawalOutput(many=True, read_only=True)
    voluntariness_checks = CheckOutput(many=True, read_only=True)
    discharge = serializers.SerializerMethodField()
    decline = serializers.SerializerMethodField()
    access = serializers.SerializerMethodField()

    @extend_schema_field(DischargeOutput(allow_null=True))
    def get_discharge(self, referral):
        discharge = getattr(referral, "discharge", None) if hasattr(referral, "discharge") else None
        return DischargeOutput(discharge).data if discharge else None

    @extend_schema_field(DeclineOutput(allow_null=True))
    def get_decline(self, referral):
        decline = getattr(referral, "decline", None) if hasattr(referral, "decline") else None
        return DeclineOutput(decline).data if decline else None

    @extend_schema_field(serializers.CharField(help_text="assigned, or break_glass when opened by break-glass"))
    def get_access(self, referral) -> str:
        return _access_of(self)


def _choice_messages(choices) -> dict:
    return {"invalid_choice": f"Not accepted; choose one of: {', '.join(value for value, _ in choices)}."}


_DATE_MESSAGES = {"invalid": "Give a date as YYYY-MM-DD, e.g. 2026-09-14."}
_SITE_MESSAGES = {
    "invalid": "Give the id of a site, a whole number (see /api/v1/sites/).",
    "min_value": "Give the id of a site, a whole number from 1 (see /api/v1/sites/).",
    "max_value": "No site has an id that large; give the id of a site (see /api/v1/sites/).",
    "max_decimal_places": "Give the id of a site, a whole number (see /api/v1/sites/).",
}


class ReferralFilter(filters.FilterSet):
    # Bounded: an id past the database's integer range would otherwise fail in the database (a 500), not here.
    site = filters.NumberFilter(field_name="site_id", min_value=1, max_value=2**63 - 1, decimal_places=0,
                                error_messages=_SITE_MESSAGES)  # fmt: skip
    status = filters.ChoiceFilter(choices=ReferralStatus.choices, error_messages=_choice_messages(ReferralStatus.choices))
    pathway = filters.ChoiceFilter(choices=Pathway.choices, error_messages=_choice_messages(Pathway.choices))
    # ISO dates only, as in bodies: the locale's 14/09/2026 would read 09/10/2026 one way here and another elsewhere.
    referred_after = filters.DateFilter(field_name="referred_on", lookup_expr="gte", input_formats=["%Y-%m-%d"],
                                        error_messages=_DATE_MESSAGES)  # fmt: skip
    referred_before = filters.DateFilter(field_name="referred_on", lookup_expr="lte", input_formats=["%Y-%m-%d"],
                                         error_messages=_DATE_MESSAGES)  # fmt: skip


def _detail(referral_id, request, access="assigned"):
    """Reload a referral the firewall has opened with everything under it (no further log: already logged)."""
    referral = selectors.referral_detail().get(pk=referral_id)
    return ReferralDetailOutput(referral, context={"request": request, "access": access}).data


@extend_schema_view(
    list=extend_schema(summary="Referrals this user may see", responses=ReferralOutput(many=True)),
    retrieve=extend_schema(summary="One referral with its records and computed voluntariness", responses=ReferralDetailOutput),
    create=extend_schema(
        summary="Record a referral (and its client)", request=ReferralInput, responses={201: ReferralDetailOutput}
    ),
)
class ReferralViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ClientDataViewSet):
    filterset_class = ReferralFilter
    parser_classes = parser_classes()
    serializer_class = ReferralOutput
    # A refused assignment is logged as the grant or revoke it tried, not as a read.
    actions_logged_as = {"assignments": Action.GRANT, "unassignment": Action.REVOKE}
    purposes = {
        "consents": firewall.Purpose.CHANGE,
        "withdrawals": firewall.Purpose.CHANGE,
        "voluntariness_checks": firewall.Purpose.CHANGE,
        "discharge": firewall.Purpose.CHANGE,
        "decline": firewall.Purpose.CHANGE,
        "assignments": firewall.Purpose.ASSIGN,
        "unassignment": firewall.Purpose.ASSIGN,
    }

    def safely_get_queryset(self) -> QuerySet:
        if self.action == "list":
            return selectors.referrals_for_list()
        return selectors.referral_detail()

    def list(self, request, *args, **kwargs):
        rows = self.list_through_firewall(request)
        # The list holds only referrals granted to the user or their team: the assigned team's view.
        return self.get_paginated_response(ReferralOutput(rows, many=True, context={"access": "assigned"}).data)

    def retrieve(self, request, *args, **kwargs):
        referral = self.get_object()
        return Response(ReferralDetailOutput(referral, context={"request": request, "access": "assigned"}).data)

    def create(self, request, *args, **kwargs):
        context = access_context(request)
        # Who may record comes first: a benefits-agency account is refused (and logged) before any parsing.
        services.require_recorder(context)
        data = ReferralInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        site = Site.objects.select_related("provider").filter(pk=values["site"]).first()
        if site is None:
            raise serializers.ValidationError(
                {"site": [f"No site {values['site']}; give the id of one of your organisation's sites (see /api/v1/sites/)."]}
            )
        referral = services.create_referral(
            context=context,
            site=site,
            referred_on=values["referred_on"],
            source_of_referral=values["source_of_referral"],
            how_heard=values["how_heard"],
            pathway=values["pathway"],
            **values["client"],
        )
        return Response(_detail(referral.pk, request), status=status.HTTP_201_CREATED)

    def _parse(self, request, input_class, pk) -> dict:
        """The validated body, or a 400; but the firewall answers first for a referral the user may not change.

        So a forbidden or unknown referral is a logged 404 whatever the body says, and nobody learns
        anything from validation messages about a referral they cannot reach.
        """
        data = input_class(data=request.data)
        if data.is_valid():
            return dict(data.validated_data)
        firewall.open_referral(access_context(request), pk, purpose=self.purpose(), action=Action.RECORD)
        raise serializers.ValidationError(data.errors)

    def _record(self, request, input_class, service, pk, **extra):
        values = self._parse(request, input_class, pk)
        service(context=access_context(request), referral_id=pk, **values, **extra)
        return Response(_detail(pk, request), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Record explicit, informed, voluntary consent", request=ConsentInput, responses={201: ReferralDetailOutput}
    )
    @action(detail=True, methods=["post"])
    def consents(self, request, pk=None):
        values = self._parse(request, ConsentInput, pk)
        template = ConsentTemplate.objects.filter(pk=values.pop("template")).first()
        if template is None:
            firewall.open_referral(access_context(request), pk, purpose=self.purpose(), action=Action.RECORD)
            raise serializers.ValidationError(
                {"template": ["No such consent template; give the id of a template in force (see /api/v1/consent-templates/)."]}
            )
        services.record_consent(context=access_context(request), referral_id=pk, template=template, **values)
        return Response(_detail(pk, request), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Record a withdrawal of consent", request=WithdrawalInput, responses={201: ReferralDetailOutput})
    @action(detail=True, methods=["post"])
    def withdrawals(self, request, pk=None):
        return self._record(request, WithdrawalInput, services.record_withdrawal, pk)

    @extend_schema(summary="Record a voluntariness check", request=CheckInput, responses={201: ReferralDetailOutput})
    @action(detail=True, methods=["post"], url_path="voluntariness-checks")
    def voluntariness_checks(self, request, pk=None):
        return self._record(request, CheckInput, services.record_voluntariness_check, pk)

    @extend_schema(summary="Discharge", request=DischargeInput, responses={201: ReferralDetailOutput})
    @action(detail=True, methods=["post"])
    def discharge(self, request, pk=None):
        return self._record(request, DischargeInput, services.discharge_referral, pk)

    @extend_schema(
        summary="The client decided not to go ahead after it was explained",
        request=DeclineInput,
        responses={201: ReferralDetailOutput},
    )
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        return self._record(request, DeclineInput, services.record_decline, pk)

    # One record of each append-only kind can be read on its own; these routes accept GET only, so PUT,
    # PATCH and DELETE on a record answer 405: corrections are new records that supersede old ones.
    def _one_record(self, rows, record_id, output_class, what: str):
        record = next((row for row in rows if row.pk == int(record_id)), None)
        if record is None:
            raise NotFound(f"No {what} {record_id} on this referral.")
        return Response(output_class(record).data)

    @extend_schema(summary="One consent record (append-only: no PUT, PATCH or DELETE)", responses=ConsentOutput)
    @action(detail=True, methods=["get"], url_path=r"consents/(?P<record_id>[0-9]{1,18})")
    def consent_record(self, request, pk=None, record_id=None):
        return self._one_record(self.get_object().consents.all(), record_id, ConsentOutput, "consent record")

    @extend_schema(summary="One withdrawal (append-only: no PUT, PATCH or DELETE)", responses=WithdrawalOutput)
    @action(detail=True, methods=["get"], url_path=r"withdrawals/(?P<record_id>[0-9]{1,18})")
    def withdrawal_record(self, request, pk=None, record_id=None):
        return self._one_record(self.get_object().withdrawals.all(), record_id, WithdrawalOutput, "withdrawal")

    @extend_schema(summary="One voluntariness check (append-only: no PUT, PATCH or DELETE)", responses=CheckOutput)
    @action(detail=True, methods=["get"], url_path=r"voluntariness-checks/(?P<record_id>[0-9]{1,18})")
    def check_record(self, request, pk=None, record_id=None):
        return self._one_record(self.get_object().voluntariness_checks.all(), record_id, CheckOutput, "voluntariness check")

    @extend_schema(
        summary="Break-glass: a clinical lead opens a referral outside their assignment, with a reason",
        request=BreakGlassInput,
        responses={200: ReferralDetailOutput},
    )
    @action(detail=True, methods=["post"], url_path="break-glass")
    def break_glass(self, request, pk=None):
        data = BreakGlassInput(data=request.data)
        # The firewall decides first: a non-lead or an unknown id is a logged 404 whatever the body.
        if not data.is_valid():
            try:
                # With no reason the firewall refuses a permitted lead before logging anything.
                firewall.break_glass(access_context(request), pk, reason="")
            except DjangoValidationError:
                pass
            raise serializers.ValidationError(data.errors)
        referral = firewall.break_glass(
            access_context(request), pk, reason=data.validated_data["reason"], base=selectors.referral_detail()
        )
        return Response(ReferralDetailOutput(referral, context={"request": request, "access": "break_glass"}).data)

    @extend_schema(
        summary="Assign a therapist (clinical lead)",
        request=AssignmentInput,
        responses={201: OpenApiResponse(description="Assigned therapists")},
    )
    @action(detail=True, methods=["post"])
    def assignments(self, request, pk=None):
        data = AssignmentInput(data=request.data)
        if not data.is_valid():
            # The firewall answers first: anyone but a lead who may assign gets a logged 404 whatever the body.
            self.get_object()
            raise serializers.ValidationError(data.errors)
        referral = firewall.assign_therapist(access_context(request), pk, _staff_member(data.validated_data["therapist"]))
        return Response({"assigned": list(firewall.assigned_therapists(referral).values_list("username", flat=True))}, status=201)

    @extend_schema(
        summary="Unassign a therapist (clinical lead)",
        responses={204: OpenApiResponse(description="Unassigned"), 400: OpenApiResponse(description="Not assigned")},
    )
    @action(detail=True, methods=["delete"], url_path=r"assignments/(?P<username>[^/]{1,150})")
    def unassignment(self, request, pk=None, username=None):
        firewall.unassign_therapist(access_context(request), pk, _staff_member(username))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _staff_member(username: str):
    """The account with this username, if any; the firewall says what is wrong with it after its own check."""
    from colocation.models import User

    return User.objects.select_related("staff_profile__organisation").filter(username=username).first()
