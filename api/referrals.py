"""Referral endpoints: thin views that parse, call consent services and the firewall, and render."""

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from api.base import ClientDataViewSet
from api.fields import ChoiceField, StrictSerializer, TextField, parsed, parser_classes
from api.schema import LEAD, THERAPIST
from colocation.selectors import account_by_username, site_by_id
from consent import selectors, services
from consent.access import firewall
from consent.access.models import Action
from consent.models import (
    ACKNOWLEDGEMENTS,
    CheckStage,
    ConsentMethod,
    ConsentScope,
    DischargeReason,
    GoalRaisedBy,
    HowHeard,
    Pathway,
    ReferralStatus,
    WithdrawalReason,
)
from consent.source_of_referral import SOURCE_OF_REFERRAL

# ---- input --------------------------------------------------------------------------------------------

# The NHS Talking Therapies codes with their meanings, as the schema lists them ("B1": "Self (Self Referral)").
SOURCE_OF_REFERRAL_CHOICES = [(code, f"{description} ({group})") for code, (group, description) in SOURCE_OF_REFERRAL.items()]


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
    """The client, by the provider's own reference: no name, no address."""

    local_reference = TextField(
        max_length=64, help_text="the provider's own reference for the client, as in its case-management system"
    )
    nhs_number = serializers.CharField(
        max_length=20, required=False, allow_blank=True, default="",
        help_text="Optional. Ten digits with a valid check digit; spaces are allowed (943 476 5919).",
    )  # fmt: skip
    year_of_birth = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1900, max_value=2100)


class ReferralInput(ExplainedInput):
    """A referral and its client. A mandated pathway is recorded honestly, never refused: the report shows it."""

    client = ClientInput()
    site = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="the id of one of your organisation's sites (see /api/v1/sites/)"
    )
    referred_on = serializers.DateField(help_text="The day of the referral; not in the future.")
    source_of_referral = ChoiceField(
        choices=SOURCE_OF_REFERRAL_CHOICES,
        help_text="The NHS Talking Therapies data set code (SourceOfReferralIAPT): B1 for a self-referral made at a "
        "co-located site; M5 when Jobcentre Plus referred the person, which the compliance report flags.",
    )
    how_heard = ChoiceField(choices=HowHeard.choices)
    pathway = ChoiceField(choices=Pathway.choices)


class Acknowledgement(serializers.BooleanField):
    """One of the five things the client was told and acknowledged: the contract requires each, and true.

    Left to the service at run time, so that a missing or false one is named with every other problem of the
    consent in one answer.
    """

    required_by_contract = True
    schema_extra = {"enum": [True], "default": None}

    def __init__(self, what: str):
        super().__init__(required=False, default=False, help_text=f"Must be true: the client was told {what}.")


class AcknowledgementsInput(ExplainedInput):
    """All five must be true for consent to count as explicit and voluntary; otherwise the consent is a 400."""

    attendance_is_optional = Acknowledgement("that attendance is optional")
    no_effect_on_benefits = Acknowledgement("that taking part or not has no effect on their benefits")
    service_separate_from_jobcentre = Acknowledgement("that the service is separate from the job centre")
    nothing_shared_with_jobcentre = Acknowledgement("that nothing about them is shared with the job centre")
    free_to_withdraw = Acknowledgement("that they are free to withdraw at any time, with no consequence")


@extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=ConsentScope.choices), max_length=20))
class ScopesInput(serializers.ListField):
    """The scopes consented to; checked by the service, which names a missing treatment scope or a refused one."""

    required_by_contract = True
    # Must include treatment: "not every item is other than treatment", in OpenAPI 3.0's terms.
    schema_extra = {
        "minItems": 1,
        "not": {"type": "array", "items": {"not": {"type": "string", "enum": [ConsentScope.TREATMENT.value]}}},
    }

    def __init__(self):
        super().__init__(
            child=serializers.CharField(max_length=64), max_length=20, required=False, default=list,
            help_text=f"Must include treatment; any of: {', '.join(ConsentScope.values)}. There is no scope for "
            "sharing with a benefits agency: asking for one is a 400.",
        )  # fmt: skip


class ConsentInput(ExplainedInput):
    """Explicit, informed, voluntary consent: the treatment scope and all five acknowledgements (each true) are required."""

    template = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1,
        help_text="the id of a consent template in force on the day consent was given (see /api/v1/consent-templates/)",
    )  # fmt: skip
    method = ChoiceField(choices=ConsentMethod.choices)
    given_at = serializers.DateTimeField(
        help_text="When consent was given, with its time zone; not before the referral, not in the future."
    )
    # Not required at run time: the service lists what is missing (the treatment scope, each acknowledgement) by name.
    scopes = ScopesInput()
    acknowledgements = AcknowledgementsInput(required=False, default=dict)
    supersedes = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1,
        help_text="To correct an earlier consent of this referral: its id. The earlier record stays, marked superseded.",
    )  # fmt: skip

    def get_fields(self):
        fields = super().get_fields()
        fields["acknowledgements"].required_by_contract = True
        return fields


class WithdrawalInput(ExplainedInput):
    """The client withdraws, free to do so at any time with no consequence."""

    withdrawn_at = serializers.DateTimeField(help_text="Not before the consent it withdraws, not in the future.")
    reason = ChoiceField(choices=WithdrawalReason.choices)
    supersedes = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, help_text="To correct an earlier withdrawal: its id."
    )
    # Absent: the client withdraws from therapy (the episode ends). Given: only these uses are withdrawn, each its
    # own append-only record, and therapy goes on.
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=20, required=False,
        help_text=f"withdraw only these uses, from: {', '.join(s for s in ConsentScope.values if s != 'treatment')}",
    )  # fmt: skip


class CheckInput(ExplainedInput):
    """What the client says about how voluntary their therapy is; whatever it finds is recorded, never refused."""

    checked_at = serializers.DateTimeField(help_text="Not before the referral, not in the future.")
    stage = ChoiceField(choices=CheckStage.choices)
    told_attendance_required = serializers.BooleanField()
    sanction_mentioned = serializers.BooleanField()
    feels_free_to_stop = serializers.BooleanField()
    goals_set_by_client = serializers.BooleanField()
    employment_goal_raised_by = ChoiceField(choices=GoalRaisedBy.choices)
    supersedes = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, help_text="To correct an earlier check: its id."
    )


class DischargeInput(ExplainedInput):
    """The end of the episode."""

    discharged_on = serializers.DateField(help_text="Not before the referral, not in the future.")
    reason = ChoiceField(choices=DischargeReason.choices)


class DeclineInput(ExplainedInput):
    """The client decided not to go ahead once it was explained: counted in the report, never dropped."""

    declined_on = serializers.DateField(help_text="Not before the referral, not in the future.")


class BreakGlassInput(ExplainedInput):
    """Why a clinical lead must open a referral outside their assignment (safeguarding, say)."""

    reason = TextField(max_length=500, help_text="The reason, kept in the access log with any identifiers in it withheld.")


class AssignmentsOutput(serializers.Serializer):
    """Who is assigned to the referral now."""

    assigned = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Usernames of the therapists assigned."
    )


class AssignmentInput(ExplainedInput):
    """The therapist to assign."""

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
ACCESS_CHOICES = [
    ("assigned", "Opened by the assigned therapist or team: every client identifier"),
    ("break_glass", "Opened by a clinical lead by break-glass: no NHS number"),
]


def _access_of(serializer) -> str:
    access = serializer.context.get("access")
    return access if access in CLIENT_FIELDS_BY_ACCESS else NARROWEST_ACCESS


class ClientOutput(serializers.Serializer):
    """The client as the caller may see them: the pseudonym, the provider's reference, and identifiers by access."""

    id = serializers.UUIDField(read_only=True, help_text="The client's pseudonym: the only way the access log names them.")
    local_reference = serializers.CharField(read_only=True)
    # Not read_only, so the schema can say it may be absent; this serializer only ever renders.
    nhs_number = serializers.CharField(
        required=False, help_text="Only for the assigned team (empty when not recorded); absent under break-glass."
    )
    year_of_birth = serializers.IntegerField(read_only=True, allow_null=True)

    def to_representation(self, instance):
        allowed = CLIENT_FIELDS_BY_ACCESS[_access_of(self)]
        return {name: value for name, value in super().to_representation(instance).items() if name in allowed}


class SiteRef(serializers.Serializer):
    """A site by id and name (see /api/v1/sites/)."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


VOLUNTARINESS_CHOICES = [
    (selectors.Voluntariness.VOLUNTARY, "Explicit consent and an intake check, and nothing found against it"),
    (selectors.Voluntariness.CONCERN, "A check found the client not free to stop, a goal set by the benefits agency, "
                                      "or a withdrawal citing pressure"),
    (selectors.Voluntariness.NOT_VOLUNTARY, "A mandated pathway, or a check recorded attendance told as required "
                                            "or a sanction mentioned"),
    (selectors.Voluntariness.UNKNOWN, "No explicit consent or no intake check yet"),
]  # fmt: skip


class VoluntarinessOutput(serializers.Serializer):
    """Computed from the referral's records, never typed in."""

    status = serializers.ChoiceField(choices=VOLUNTARINESS_CHOICES, read_only=True)
    reasons = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Why, in words; empty when voluntary."
    )


class ReferralOutput(serializers.Serializer):
    """A referral as listed: its client, site, how it came about, its status and computed voluntariness."""

    id = serializers.UUIDField(read_only=True)
    client = ClientOutput(read_only=True)
    site = SiteRef(read_only=True)
    referred_on = serializers.DateField(read_only=True)
    source_of_referral = serializers.ChoiceField(choices=SOURCE_OF_REFERRAL_CHOICES, read_only=True)
    how_heard = serializers.ChoiceField(choices=HowHeard.choices, read_only=True)
    pathway = serializers.ChoiceField(choices=Pathway.choices, read_only=True)
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
    """The consent template version the client agreed to, with the SHA-256 of its text."""

    id = serializers.IntegerField(read_only=True)
    code = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)
    language = serializers.CharField(read_only=True)
    body_sha256 = serializers.CharField(read_only=True)


class AcknowledgementsOutput(serializers.Serializer):
    """The five acknowledgements, all true on every consent recorded."""

    attendance_is_optional = serializers.BooleanField(read_only=True)
    no_effect_on_benefits = serializers.BooleanField(read_only=True)
    service_separate_from_jobcentre = serializers.BooleanField(read_only=True)
    nothing_shared_with_jobcentre = serializers.BooleanField(read_only=True)
    free_to_withdraw = serializers.BooleanField(read_only=True)


class ConsentOutput(serializers.Serializer):
    """A consent record (append-only; a correction is a new record naming the one it supersedes)."""

    id = serializers.IntegerField(read_only=True)
    template = TemplateRef(read_only=True)
    given_at = serializers.DateTimeField(read_only=True)
    method = serializers.ChoiceField(choices=ConsentMethod.choices, read_only=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ConsentScope.choices), read_only=True)
    acknowledgements = serializers.SerializerMethodField()
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)
    recorded_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(AcknowledgementsOutput)
    def get_acknowledgements(self, record) -> dict:
        return {name: getattr(record, name) for name in ACKNOWLEDGEMENTS}


class WithdrawalOutput(serializers.Serializer):
    """A withdrawal (append-only)."""

    id = serializers.IntegerField(read_only=True)
    withdrawn_at = serializers.DateTimeField(read_only=True)
    reason = serializers.ChoiceField(choices=WithdrawalReason.choices, read_only=True)
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class ScopeWithdrawalOutput(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    scope = serializers.CharField(read_only=True)
    withdrawn_at = serializers.DateTimeField(read_only=True)
    reason = serializers.CharField(read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class CheckOutput(serializers.Serializer):
    """A voluntariness check (append-only)."""

    id = serializers.IntegerField(read_only=True)
    checked_at = serializers.DateTimeField(read_only=True)
    stage = serializers.ChoiceField(choices=CheckStage.choices, read_only=True)
    told_attendance_required = serializers.BooleanField(read_only=True)
    sanction_mentioned = serializers.BooleanField(read_only=True)
    feels_free_to_stop = serializers.BooleanField(read_only=True)
    goals_set_by_client = serializers.BooleanField(read_only=True)
    employment_goal_raised_by = serializers.ChoiceField(choices=GoalRaisedBy.choices, read_only=True)
    supersedes = serializers.IntegerField(source="supersedes_id", read_only=True, allow_null=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class DischargeOutput(serializers.Serializer):
    """The discharge that ended the episode."""

    discharged_on = serializers.DateField(read_only=True)
    reason = serializers.ChoiceField(choices=DischargeReason.choices, read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class DeclineOutput(serializers.Serializer):
    """The client's decision not to go ahead after it was explained."""

    declined_on = serializers.DateField(read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class ReferralDetailOutput(ReferralOutput):
    """One referral with every record under it (superseded records included, marked by `supersedes`)."""

    consents = ConsentOutput(many=True, read_only=True)
    withdrawals = WithdrawalOutput(many=True, read_only=True)
    scope_withdrawals = ScopeWithdrawalOutput(many=True, read_only=True)
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

    @extend_schema_field(serializers.ChoiceField(choices=ACCESS_CHOICES))
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


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class SiteIdFilter(filters.NumberFilter):
    """A site id: a whole number (django-filter's NumberFilter would be documented as any number)."""


class ReferralFilter(filters.FilterSet):
    # Bounded: an id past the database's integer range would otherwise fail in the database (a 500), not here.
    site = SiteIdFilter(field_name="site_id", min_value=1, max_value=2**63 - 1, decimal_places=0,
                        error_messages=_SITE_MESSAGES, help_text="A site id (see /api/v1/sites/).")  # fmt: skip
    status = filters.ChoiceFilter(choices=ReferralStatus.choices, error_messages=_choice_messages(ReferralStatus.choices))
    pathway = filters.ChoiceFilter(choices=Pathway.choices, error_messages=_choice_messages(Pathway.choices))
    # ISO dates only, as in bodies: the locale's 14/09/2026 would read 09/10/2026 one way here and another elsewhere.
    referred_after = filters.DateFilter(field_name="referred_on", lookup_expr="gte", input_formats=["%Y-%m-%d"],
                                        error_messages=_DATE_MESSAGES)  # fmt: skip
    referred_before = filters.DateFilter(field_name="referred_on", lookup_expr="lte", input_formats=["%Y-%m-%d"],
                                         error_messages=_DATE_MESSAGES)  # fmt: skip
    # Finding a client by the provider's own reference, among the referrals this user may see: the filter
    # runs on the firewall's queryset (ClientDataViewSet), never on every referral.
    search = filters.CharFilter(method="search_by_reference", max_length=64,
                                help_text="Part of the client's local reference (any case).")  # fmt: skip
    local_reference = filters.CharFilter(method="by_exact_reference", max_length=64,
                                         help_text="The client's local reference, whole (any case).")  # fmt: skip

    def search_by_reference(self, queryset, name, value):
        return selectors.search_referrals(queryset, value)

    def by_exact_reference(self, queryset, name, value):
        return selectors.search_referrals(queryset, value, exact=True)


def _detail(referral, request, access="assigned"):
    """The opened referral again, as it now stands, with everything under it (no further log: already logged)."""
    return ReferralDetailOutput(selectors.opened_referral_detail(referral), context={"request": request, "access": access}).data


CLINICIANS = [THERAPIST, LEAD]
RECORDED = {201: OpenApiResponse(ReferralDetailOutput, description="Recorded: the referral as it now stands.")}


@extend_schema_view(
    list=extend_schema(
        tags=CLINICIANS,
        summary="The referrals assigned to you or your team",
        description=(
            "Only the referrals granted to you or your clinical team, newest first, each with its computed "
            "voluntariness. Filter by site, status, pathway and referral date, or find a client by their local "
            "reference (`local_reference` whole, `search` for part of it): always among the referrals you may see. "
            "Each referral shown is an access event in the provider's log."
        ),
        responses=ReferralOutput(many=True),
    ),
    retrieve=extend_schema(
        tags=CLINICIANS,
        summary="One referral with all its records",
        description=(
            "The referral with its consents, withdrawals, voluntariness checks, decline and discharge. An id you may "
            "not see answers 404, exactly as an id that does not exist, and the attempt is logged."
        ),
        responses=ReferralDetailOutput,
    ),
    create=extend_schema(
        tags=CLINICIANS,
        summary="Record a referral and its client",
        description=(
            "Records a referral made at one of your organisation's sites; the client is identified by the "
            "provider's own local reference (no name, no address). The referral starts `awaiting_consent` and is "
            "granted to you and your clinical team. A mandated pathway is recorded as it happened, never refused."
        ),
        request=ReferralInput,
        responses={201: OpenApiResponse(ReferralDetailOutput, description="Recorded: the new referral.")},
    ),
)
class ReferralViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ClientDataViewSet):
    filterset_class = ReferralFilter
    parser_classes = parser_classes()
    serializer_class = ReferralOutput
    # A refused write is logged as what it tried: a record, a withdrawal, a grant or revoke, not as a read.
    actions_logged_as = {
        "consents": Action.RECORD,
        "withdrawals": Action.WITHDRAWAL,
        "voluntariness_checks": Action.RECORD,
        "discharge": Action.RECORD,
        "decline": Action.RECORD,
        "assignments": Action.GRANT,
        "unassignment": Action.REVOKE,
    }
    writes = frozenset(actions_logged_as)
    breaks_glass = frozenset({"break_glass"})
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
        context = self.access
        # Who may record comes first: a benefits-agency account is refused (and logged) before any parsing.
        services.require_recorder(context)
        values = parsed(ReferralInput, request.data)
        site = site_by_id(values["site"])
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
        return Response(_detail(referral, request), status=status.HTTP_201_CREATED)

    def _recorded(self, request, service, **values) -> Response:
        """Hand the opened referral and the parsed body to the service; answer with the referral as it now stands."""
        service(context=self.access, referral=self.referral, **values)
        return Response(_detail(self.referral, request), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=CLINICIANS,
        summary="Record the client's consent",
        description=(
            "Consent counts as explicit and voluntary only with the `treatment` scope and all five acknowledgements "
            "true (attendance is optional, no effect on benefits, the service is separate from the job centre, "
            "nothing is shared with it, free to withdraw); otherwise the answer is a 400 naming each one missing. "
            "There is no scope for sharing with a benefits agency. The referral becomes `active`; with `supersedes` "
            "the record corrects an earlier consent instead."
        ),
        request=ConsentInput,
        responses=RECORDED,
    )
    @action(detail=True, methods=["post"])
    def consents(self, request, pk=None):
        values = parsed(ConsentInput, request.data)
        template = selectors.consent_template(values.pop("template"))
        if template is None:
            raise serializers.ValidationError(
                {"template": ["No such consent template; give the id of a template in force (see /api/v1/consent-templates/)."]}
            )
        return self._recorded(request, services.record_consent, template=template, **values)

    @extend_schema(
        tags=CLINICIANS,
        summary="Withdraw from therapy, or (with scopes) withdraw only some uses and stay in therapy",
        description=(
            "The client is free to withdraw at any time with no consequence. Without `scopes` the referral becomes "
            "`withdrawn`; a withdrawal citing pressure marks it as a concern in its voluntariness and in the compliance "
            "report. With `scopes` (say, `contact_by_sms`) only those uses end, each as its own append-only record, and "
            "therapy carries on; `treatment` cannot be withdrawn this way (withdraw from therapy instead)."
        ),
        request=WithdrawalInput,
        responses=RECORDED,
    )
    @action(detail=True, methods=["post"])
    def withdrawals(self, request, pk=None):
        values = parsed(WithdrawalInput, request.data)
        if "scopes" not in values:
            return self._recorded(request, services.record_withdrawal, **values)
        if values.pop("supersedes") is not None:
            raise serializers.ValidationError({"supersedes": ["A withdrawal of uses supersedes nothing; leave it out."]})
        return self._recorded(request, services.record_scope_withdrawal, **values)

    @extend_schema(
        tags=CLINICIANS,
        summary="Record a voluntariness check",
        description=(
            "What the client says at intake, during therapy or at discharge about whether attending is their own "
            "choice. Whatever it finds is recorded, never refused; the referral's voluntariness is recomputed from it."
        ),
        request=CheckInput,
        responses=RECORDED,
    )
    @action(detail=True, methods=["post"], url_path="voluntariness-checks")
    def voluntariness_checks(self, request, pk=None):
        return self._recorded(request, services.record_voluntariness_check, **parsed(CheckInput, request.data))

    @extend_schema(
        tags=CLINICIANS,
        summary="Discharge the client",
        description="Ends the episode: the referral becomes `discharged`, and nothing further can be recorded on it.",
        request=DischargeInput,
        responses=RECORDED,
    )
    @action(detail=True, methods=["post"])
    def discharge(self, request, pk=None):
        return self._recorded(request, services.discharge_referral, **parsed(DischargeInput, request.data))

    @extend_schema(
        tags=CLINICIANS,
        summary="Record that the client declined after it was explained",
        description=(
            "For a referral still awaiting consent: the client decided not to go ahead. The referral becomes "
            "`declined` and stays counted in the compliance report, so the numbers remain honest."
        ),
        request=DeclineInput,
        responses=RECORDED,
    )
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        return self._recorded(request, services.record_decline, **parsed(DeclineInput, request.data))

    # One record of each append-only kind can be read on its own; these routes accept GET only, so PUT,
    # PATCH and DELETE on a record answer 405: corrections are new records that supersede old ones.
    def _one_record(self, rows, record_id, output_class, what: str):
        record = next((row for row in rows if row.pk == int(record_id)), None)
        if record is None:
            raise NotFound(f"No {what} {record_id} on this referral.")
        return Response(output_class(record).data)

    @extend_schema(
        tags=CLINICIANS,
        summary="One consent record",
        description="Consent records are append-only: there is no PUT, PATCH or DELETE (405); correct one by recording "
        "a new consent with `supersedes`.",
        responses=ConsentOutput,
    )
    @action(detail=True, methods=["get"], url_path=r"consents/(?P<record_id>[0-9]{1,18})")
    def consent_record(self, request, pk=None, record_id=None):
        return self._one_record(self.get_object().consents.all(), record_id, ConsentOutput, "consent record")

    @extend_schema(
        tags=CLINICIANS,
        summary="One withdrawal",
        description="Withdrawals are append-only (no PUT, PATCH or DELETE: 405); a correction is a new withdrawal with "
        "`supersedes`.",
        responses=WithdrawalOutput,
    )
    @action(detail=True, methods=["get"], url_path=r"withdrawals/(?P<record_id>[0-9]{1,18})")
    def withdrawal_record(self, request, pk=None, record_id=None):
        return self._one_record(self.get_object().withdrawals.all(), record_id, WithdrawalOutput, "withdrawal")

    @extend_schema(
        tags=CLINICIANS,
        summary="One voluntariness check",
        description="Checks are append-only (no PUT, PATCH or DELETE: 405); a correction is a new check with `supersedes`.",
        responses=CheckOutput,
    )
    @action(detail=True, methods=["get"], url_path=r"voluntariness-checks/(?P<record_id>[0-9]{1,18})")
    def check_record(self, request, pk=None, record_id=None):
        return self._one_record(self.get_object().voluntariness_checks.all(), record_id, CheckOutput, "voluntariness check")

    @extend_schema(
        tags=[LEAD],
        summary="Break-glass: open a referral outside your assignment",
        description=(
            "For a clinical lead of the referral's provider who must act on a client not assigned to them (a "
            "safeguarding concern, say): the reason is logged, the DPO always gets an alert, and the client's NHS "
            "number is left out (`access` is `break_glass`). Anyone else gets 404. Never open to a benefits-agency account."
        ),
        request=BreakGlassInput,
        responses={200: ReferralDetailOutput},
    )
    @action(detail=True, methods=["post"], url_path="break-glass")
    def break_glass(self, request, pk=None):
        reason = parsed(BreakGlassInput, request.data)["reason"]
        referral = firewall.break_glass(self.access, reason=reason, referral=self.referral)
        return Response(ReferralDetailOutput(referral, context={"request": request, "access": "break_glass"}).data)

    @extend_schema(
        tags=[LEAD],
        summary="Assign a therapist to the referral",
        description=(
            "A clinical lead grants a therapist of the same provider access to this referral and its client. The "
            "grant is an access event on the provider's chain."
        ),
        request=AssignmentInput,
        responses={201: OpenApiResponse(AssignmentsOutput, description="Assigned: every therapist now assigned.")},
    )
    @action(detail=True, methods=["post"])
    def assignments(self, request, pk=None):
        therapist = account_by_username(parsed(AssignmentInput, request.data)["therapist"])
        referral = firewall.assign_therapist(self.access, therapist=therapist, referral=self.referral)
        return Response({"assigned": list(firewall.assigned_therapists(referral).values_list("username", flat=True))}, status=201)

    @extend_schema(
        tags=[LEAD],
        summary="Unassign a therapist from the referral",
        description="A clinical lead revokes a therapist's access to this referral; the revocation is an access event.",
        responses={
            204: OpenApiResponse(description="Unassigned."),
            400: OpenApiResponse(description="That account is not a therapist assigned to this referral."),
        },
    )
    @action(detail=True, methods=["delete"], url_path=r"assignments/(?P<username>[^/]{1,150})")
    def unassignment(self, request, pk=None, username=None):
        firewall.unassign_therapist(self.access, therapist=account_by_username(username), referral=self.referral)
        return Response(status=status.HTTP_204_NO_CONTENT)
