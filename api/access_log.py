"""The DPO's access-log endpoints, and a referral's access history and subject-access export.

Thin views: parse the query or body, ask consent.access (selectors, services, exports, the firewall), render.
"""

import csv
import re
from datetime import UTC, datetime, time

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import include, path
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from api.base import ClientDataViewSet
from api.context import access_context
from api.fields import ChoiceField, StrictSerializer, TextField, parsed
from api.pagination import PAGE_PARAMETERS
from api.query import DeclaredQueryOnly
from api.referrals import (
    SOURCE_OF_REFERRAL_CHOICES,
    AcknowledgementsOutput,
    CheckOutput,
    DeclineOutput,
    DischargeOutput,
    SiteRef,
    VoluntarinessOutput,
    WithdrawalOutput,
)
from api.schema import DPO, LEAD, THERAPIST, ContractCharField, code_field
from colocation.models import OrganisationKind
from consent import exports
from consent import selectors as selectors_of_consent
from consent.access import firewall, selectors, services
from consent.access.log import AlertReason, verify_chain
from consent.access.models import Action, Disposition, Outcome
from consent.models import ConsentMethod, ConsentScope, HowHeard, Pathway, ReferralStatus

# ---- renderers ---------------------------------------------------------------------------------------------


class CSVRenderer(BaseRenderer):
    """`?format=csv`: the view streams the rows itself; this renderer only names the format."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


class FHIRRenderer(JSONRenderer):
    """`?format=fhir`: a FHIR Bundle, as FHIR's own JSON media type."""

    media_type = "application/fhir+json"
    format = "fhir"


# ---- input -------------------------------------------------------------------------------------------------


class WhenField(serializers.Field):
    """A date (YYYY-MM-DD) or an ISO 8601 date and time; a date alone covers the whole day."""

    def __init__(self, *, end_of_day: bool, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            moment = parse_datetime(text)
            day = None if moment else parse_date(text)
        except ValueError:
            moment = day = None
        if moment is None and day is None:
            raise serializers.ValidationError(
                "Give a date as YYYY-MM-DD or a date and time in ISO 8601, e.g. 2026-09-14T10:05:00Z."
            )
        if moment is None:
            moment = datetime.combine(day, time.max if self.end_of_day else time.min)
        try:
            moment = moment if timezone.is_aware(moment) else timezone.make_aware(moment)
            # The database compares in UTC: a moment that cannot be expressed there is not a usable bound.
            moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise serializers.ValidationError("Give a date and time between the years 0001 and 9999.") from None
        return moment


class EventFilterInput(serializers.Serializer):
    actor = serializers.CharField(max_length=150, required=False, help_text="a user id or username")
    referral = serializers.UUIDField(
        required=False, error_messages={"invalid": "Give a referral id (a UUID such as 5b7c1f0e-...)."}
    )
    action = ChoiceField(choices=Action.choices, required=False)
    outcome = ChoiceField(choices=Outcome.choices, required=False)
    organisation_kind = ChoiceField(choices=OrganisationKind.choices, required=False)
    occurred_after = WhenField(end_of_day=False, required=False)
    occurred_before = WhenField(end_of_day=True, required=False)


class AlertFilterInput(serializers.Serializer):
    state = ChoiceField(choices=[("open", "open"), ("closed", "closed")], required=False)


class DispositionInput(StrictSerializer):
    disposition = ChoiceField(choices=Disposition.choices)
    note = TextField(max_length=4000)


class GroupDispositionInput(StrictSerializer):
    actor = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, allow_null=True, default=None,
                                     help_text="the actor's user id, as the group gives it; null for an unknown actor")  # fmt: skip
    actor_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="",
                                       help_text="the actor's name at the time, for a group with no actor id")  # fmt: skip
    day = serializers.DateField(help_text="the group's day, YYYY-MM-DD, in the service's time zone")
    up_to = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="the group's last_seq as you were shown it")
    disposition = ChoiceField(choices=Disposition.choices)
    note = TextField(max_length=4000)


class VerifyInput(serializers.Serializer):
    against = serializers.RegexField(
        re.compile(r"^[0-9a-f]{64}$"),
        required=False,
        error_messages={"invalid": "Give a head hash as published earlier: 64 lowercase hexadecimal characters."},
    )


def _dpo_only(request) -> int:
    """A benefits-agency account's attempt is logged and refused as a whole; anyone else not a DPO is refused."""
    firewall.refuse_benefits_agency(access_context(request), action=Action.LIST)
    return selectors.dpo_organisation_id(request.user)


# ---- output ------------------------------------------------------------------------------------------------


def _alert_as_dict(event) -> dict:
    decided = None
    if event.disposition:
        decided = {"disposition": event.disposition, "note": event.disposition_note, "decided_by": event.disposition_by,
                   "decided_at": event.disposition_at}  # fmt: skip
    return {**exports.event_as_dict(event), "open": event.is_open, "latest_disposition": decided}


class Echo:
    """A file-like object whose write hands back what it is given, for streaming CSV."""

    def write(self, value):
        return value


ALERT_REASON_CHOICES = [(reason, AlertReason.LABELS[reason]) for reason in AlertReason.ALL]


def actor_kind_field() -> serializers.CharField:
    """The actor's kind of organisation, or empty for an account with none (a failed sign-in naming no account)."""
    return ContractCharField(
        allow_blank=True,
        schema_extra={
            "type": None,
            "oneOf": [{"$ref": "#/components/schemas/OrganisationKindEnum"}, {"type": "string", "enum": [""]}],
            "description": "The actor's kind of organisation; empty for an account with none.",
        },
    )


class ActorOutput(serializers.Serializer):
    """Who acted, as they were at the time (kept even if the account is later renamed or removed)."""

    id = serializers.IntegerField(allow_null=True, help_text="The user id; null for a sign-in attempt naming no account.")
    name = serializers.CharField()
    organisation_id = serializers.IntegerField(allow_null=True)
    organisation_kind = actor_kind_field()


class EventRequestOutput(serializers.Serializer):
    """The request the event belongs to. Query values that are not ids, dates or enumerations are withheld."""

    id = serializers.CharField(help_text="The server's request id (also in the X-Request-ID header of the answer).")
    method = serializers.CharField()
    path = serializers.CharField()
    status = serializers.IntegerField(allow_null=True)


class AccessEventOutput(serializers.Serializer):
    """One access event: append-only, hash-chained per provider organisation. Clients appear only by pseudonym."""

    id = serializers.IntegerField()
    chain = serializers.IntegerField(help_text="The organisation whose chain holds the event.")
    seq = serializers.IntegerField(help_text="Its place in the chain, from 1.")
    occurred_at = serializers.DateTimeField()
    actor = ActorOutput()
    action = serializers.ChoiceField(choices=Action.choices)
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    client_pseudonym = serializers.UUIDField(allow_null=True)
    referral = serializers.UUIDField(allow_null=True)
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    purpose = serializers.CharField()
    request = EventRequestOutput()
    alert_reasons = serializers.ListField(child=serializers.ChoiceField(choices=ALERT_REASON_CHOICES))
    prev_hash = serializers.CharField(help_text="SHA-256 (hex) of the event before it in the chain.")
    hash = serializers.CharField(help_text="SHA-256 (hex) over the canonical encoding of the event's fields.")


class LatestDispositionOutput(serializers.Serializer):
    """The DPO's latest decision on an alert."""

    disposition = serializers.ChoiceField(choices=Disposition.choices)
    note = serializers.CharField()
    decided_by = serializers.CharField()
    decided_at = serializers.DateTimeField()


class AlertOutput(AccessEventOutput):
    """An access event that raised an alert, with where the DPO's review of it stands."""

    open = serializers.BooleanField(help_text="No disposition yet, or the latest is investigating.")
    latest_disposition = LatestDispositionOutput(allow_null=True)


class DispositionOutput(serializers.Serializer):
    """A disposition as recorded (append-only: a new decision is a new record)."""

    id = serializers.IntegerField()
    alert = serializers.IntegerField(help_text="The id of the alert's access event.")
    open = serializers.BooleanField()
    disposition = serializers.ChoiceField(choices=Disposition.choices)
    note = serializers.CharField()
    decided_by = serializers.CharField()
    decided_at = serializers.DateTimeField()


class AlertGroupOutput(serializers.Serializer):
    """The open alerts of one actor on one day, counted (one line in the queue, one decision)."""

    actor = serializers.IntegerField(allow_null=True, help_text="The actor's user id; null for an unknown actor.")
    actor_name = serializers.CharField(help_text="The actor's name at the time.")
    actor_organisation_kind = serializers.CharField(help_text="The actor's kind of organisation at the time, or empty.")
    day = serializers.DateField(help_text="In the service's time zone.")
    alerts = serializers.IntegerField(help_text="Open alerts in the group.")
    denied = serializers.IntegerField(help_text="Of them, refused attempts.")
    first_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField(help_text="Give it as `up_to` when deciding on the group.")


class AlertGroupListOutput(serializers.Serializer):
    results = AlertGroupOutput(many=True)


class GroupDispositionOutput(serializers.Serializer):
    """The decision recorded on each alert of the group (one append-only record per alert)."""

    decided = serializers.IntegerField(help_text="How many alerts the decision was recorded on.")
    alerts = serializers.ListField(child=serializers.IntegerField(), help_text="The ids of their access events.")
    disposition = serializers.ChoiceField(choices=Disposition.choices)


class MismatchOutput(serializers.Serializer):
    """Where the chain first fails to verify."""

    event_id = serializers.IntegerField(allow_null=True)
    chain = serializers.IntegerField(allow_null=True)
    seq = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField()


class ChainHeadOutput(serializers.Serializer):
    """A chain's newest event: publish it, and check later that the chain still holds it (`against`)."""

    seq = serializers.IntegerField()
    head_hash = serializers.CharField()


class VerificationOutput(serializers.Serializer):
    """The walk of the organisation's hash chain, event by event."""

    verified = serializers.BooleanField()
    events_checked = serializers.IntegerField()
    first_mismatch = MismatchOutput(allow_null=True)
    heads = serializers.DictField(child=ChainHeadOutput(), help_text="The head of each chain walked, by organisation id.")
    against_found = serializers.BooleanField(
        required=False, help_text="Only with `against`: whether that published head is still in the chain."
    )


# FHIR documents keep FHIR's own camelCase names.
class FHIRAuditEventOutput(serializers.Serializer):
    """An HL7 FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html); nested elements follow FHIR's own schema."""

    resourceType = code_field("AuditEvent")
    id = serializers.CharField()
    type = serializers.JSONField()
    subtype = serializers.ListField(child=serializers.JSONField())
    action = code_field("C", "R", "U", "D", "E", help_text="Create, Read, Update, Delete or Execute.")
    recorded = serializers.DateTimeField()
    outcome = code_field("0", "4", help_text="0 success; 4 minor failure, which is how a refusal is reported.")
    outcomeDesc = serializers.CharField()
    agent = serializers.ListField(child=serializers.JSONField())
    source = serializers.JSONField()
    entity = serializers.ListField(child=serializers.JSONField())
    purposeOfEvent = serializers.ListField(child=serializers.JSONField(), required=False)


class FHIRBundleLinkOutput(serializers.Serializer):
    relation = serializers.CharField()
    url = serializers.CharField()


class FHIRBundleEntryOutput(serializers.Serializer):
    fullUrl = serializers.CharField()
    resource = FHIRAuditEventOutput()
    search = inline_serializer("FHIRBundleEntrySearch", {"mode": serializers.CharField()})


class FHIRAuditEventBundleOutput(serializers.Serializer):
    """A FHIR R4 searchset Bundle of AuditEvents: one page of the log, with links to its neighbours."""

    resourceType = code_field("Bundle")
    type = code_field("searchset")
    timestamp = serializers.DateTimeField()
    total = serializers.IntegerField()
    link = FHIRBundleLinkOutput(many=True)
    entry = FHIRBundleEntryOutput(many=True)


# ---- the subject-access export ----


class ControllerOutput(serializers.Serializer):
    """The data controller: the therapy provider that holds the records."""

    id = serializers.IntegerField()
    name = serializers.CharField()


class SubjectOutput(serializers.Serializer):
    """Everything held to identify the client (empty once retention has erased it)."""

    pseudonym = serializers.UUIDField()
    local_reference = serializers.CharField()
    nhs_number = serializers.CharField()
    year_of_birth = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    identifiers_erased_at = serializers.DateTimeField(allow_null=True)


class ConsentTemplateTextOutput(serializers.Serializer):
    """The text the client was shown, with its SHA-256."""

    code = serializers.CharField()
    version = serializers.IntegerField()
    title = serializers.CharField()
    language = serializers.CharField()
    body = serializers.CharField()
    body_sha256 = serializers.CharField()


class SubjectConsentOutput(serializers.Serializer):
    """A consent record with the text consented to."""

    id = serializers.IntegerField()
    template = ConsentTemplateTextOutput()
    given_at = serializers.DateTimeField()
    method = serializers.ChoiceField(choices=ConsentMethod.choices)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ConsentScope.choices))
    acknowledgements = AcknowledgementsOutput()
    supersedes = serializers.IntegerField(allow_null=True)
    recorded_at = serializers.DateTimeField()


class SubjectReferralOutput(serializers.Serializer):
    """One of the client's referrals with the provider, with every record under it."""

    id = serializers.UUIDField()
    site = SiteRef()
    referred_on = serializers.DateField()
    source_of_referral = serializers.ChoiceField(choices=SOURCE_OF_REFERRAL_CHOICES)
    how_heard = serializers.ChoiceField(choices=HowHeard.choices)
    pathway = serializers.ChoiceField(choices=Pathway.choices)
    status = serializers.ChoiceField(choices=ReferralStatus.choices)
    voluntariness = VoluntarinessOutput()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    consents = SubjectConsentOutput(many=True)
    withdrawals = WithdrawalOutput(many=True)
    voluntariness_checks = CheckOutput(many=True)
    discharge = DischargeOutput(allow_null=True)
    decline = DeclineOutput(allow_null=True)


class HistoryActorOutput(serializers.Serializer):
    name = serializers.CharField()
    organisation_kind = actor_kind_field()


class HistoryEntryOutput(serializers.Serializer):
    """One access to the client's records, as the client is told of it."""

    occurred_at = serializers.DateTimeField()
    actor = HistoryActorOutput()
    action = serializers.ChoiceField(choices=Action.choices)
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    referral = serializers.UUIDField(allow_null=True)
    purpose = serializers.CharField()
    seq = serializers.IntegerField()
    hash = serializers.CharField()


class SubjectAccessExportOutput(serializers.Serializer):
    """A subject-access export (UK GDPR article 15): everything the provider holds about the client, and who accessed it."""

    generated_at = serializers.DateTimeField()
    controller = ControllerOutput()
    client = SubjectOutput()
    referrals = SubjectReferralOutput(many=True)
    access_history = HistoryEntryOutput(many=True)


# ---- views -------------------------------------------------------------------------------------------------


class DPOView(DeclaredQueryOnly, GenericAPIView):
    """A view of the DPO's own organisation's log: JSON, and errors always JSON whatever format was asked for."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    filter_backends: list = []
    # _dpo_only() refuses (and logs) a benefits-agency account before anything else, the query included.
    refuses_benefits_agency_first = True

    def get_queryset(self):
        # Only the browsable API asks (for a filter form it then leaves out): the views read through selectors.
        return selectors.no_events()

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400 and getattr(request, "accepted_renderer", None).__class__ in (CSVRenderer, FHIRRenderer):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


LOG_FORMATS = ["json", "csv", "fhir"]


class AccessEventListView(DPOView):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer, FHIRRenderer]

    @extend_schema(
        tags=[DPO],
        summary="Your organisation's access log",
        description=(
            "Every access to client data on your organisation's hash chain, newest first, in pages. Filter by actor, "
            "referral, action, outcome, the actor's kind of organisation and time. `?format=csv` downloads every "
            "matching event in chain order (the download is itself logged); `?format=fhir` gives the page as a "
            "FHIR R4 searchset Bundle of AuditEvent resources."
        ),
        operation_id="access_events_list",
        parameters=[
            OpenApiParameter("actor", str, description="A user id or username."),
            OpenApiParameter("referral", OpenApiTypes.UUID, description="A referral id."),
            OpenApiParameter("action", str, enum=Action.values),
            OpenApiParameter("outcome", str, enum=Outcome.values),
            OpenApiParameter(
                "organisation_kind", str, enum=OrganisationKind.values, description="The actor's kind of organisation."
            ),
            OpenApiParameter(
                "occurred_after", str, description="A date (YYYY-MM-DD, from its start) or an ISO 8601 date and time."
            ),
            OpenApiParameter("occurred_before", str, description="A date (YYYY-MM-DD, to its end) or an ISO 8601 date and time."),
            OpenApiParameter("format", str, enum=LOG_FORMATS, description="json (default), csv or fhir."),
            *PAGE_PARAMETERS,
        ],
        responses={
            (200, "application/json"): AccessEventOutput(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="?format=csv: every matching event, in chain order"),
            (200, "application/fhir+json"): OpenApiResponse(
                FHIRAuditEventBundleOutput, description="?format=fhir: one page as a FHIR R4 searchset Bundle of AuditEvent"
            ),
        },
    )
    def get(self, request):
        _dpo_only(request)
        filters = selectors.EventFilters(**parsed(EventFilterInput, request.query_params))
        fmt = request.accepted_renderer.format
        if fmt == "csv":
            return self._csv(request, filters)
        page = self.paginate_queryset(selectors.events_for_dpo(request.user, filters))
        if fmt == "fhir":
            links = {"self": request.build_absolute_uri(), "next": self.paginator.get_next_link(),
                     "previous": self.paginator.get_previous_link()}  # fmt: skip
            bundle = exports.audit_event_bundle(page, total=self.paginator.page.paginator.count, links=links)
            return Response(bundle, content_type=FHIRRenderer.media_type)
        return self.get_paginated_response([exports.event_as_dict(event) for event in page])

    def _csv(self, request, filters):
        chain_id, events = selectors.events_for_export(request.user, filters)
        # The export itself is an access worth knowing about: logged before a single row leaves.
        services.record_log_export(context=access_context(request, purpose="access log export (csv)"), organisation_id=chain_id)
        writer = csv.writer(Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in exports.csv_rows(events)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="access-log-organisation-{chain_id}.csv"'
        return response


class AccessEventDetailView(DPOView):
    """One event; there is no PUT, PATCH or DELETE (the log is append-only), so those answer 405."""

    @extend_schema(
        tags=[DPO],
        summary="One event of your organisation's access log",
        description="The log is append-only: there is no PUT, PATCH or DELETE (405).",
        operation_id="access_events_retrieve",
        responses=AccessEventOutput,
    )
    def get(self, request, pk: int):
        _dpo_only(request)
        event = selectors.events_for_dpo(request.user).filter(pk=pk).first()
        if event is None:
            raise NotFound("No access event with that id in your organisation's log.")
        return Response(exports.event_as_dict(event))


class AlertListView(DPOView):
    @extend_schema(
        tags=[DPO],
        summary="The alert queue",
        description=(
            "Events that raised an alert on your organisation's chain: refused attempts, any attempt by a "
            "benefits-agency account, access outside an assignment, break-glass, unusual volume. Open alerts "
            "first (no disposition yet, or still investigating), then the closed ones, newest first within each."
        ),
        operation_id="access_alerts_list",
        parameters=[OpenApiParameter("state", str, enum=["open", "closed"], description="Only open or only closed alerts.")],
        responses=AlertOutput(many=True),
    )
    def get(self, request):
        _dpo_only(request)
        state = parsed(AlertFilterInput, request.query_params).get("state")
        page = self.paginate_queryset(selectors.alerts_for_dpo(request.user, state=state))
        return self.get_paginated_response([_alert_as_dict(event) for event in page])


class AlertGroupListView(DPOView):
    @extend_schema(
        tags=[DPO],
        summary="The open alerts grouped by actor and day",
        description=(
            "The alert queue folded by who and when: thirteen refused requests from one work-coach session are one "
            "line, newest first (at most 200 groups), so one decision can settle them together."
        ),
        operation_id="access_alert_groups_list",
        responses=AlertGroupListOutput,
    )
    def get(self, request):
        _dpo_only(request)
        groups = selectors.alert_groups_for_dpo(request.user)
        return Response({"results": [
            {"actor": g.actor_id, "actor_name": g.actor_name, "actor_organisation_kind": g.actor_organisation_kind,
             "day": g.day, "alerts": g.alerts, "denied": g.denied, "first_seq": g.first_seq, "last_seq": g.last_seq}
            for g in groups
        ]})  # fmt: skip


class GroupDispositionView(DPOView):
    # What OPTIONS describes for POST (DRF's metadata asks the view for its serializer).
    serializer_class = GroupDispositionInput

    @extend_schema(
        tags=[DPO],
        summary="Record one decision on a whole group of alerts",
        description=(
            "The group is one actor's open alerts on one day, up to `up_to` (the group's `last_seq` as you were "
            "shown it, so an alert raised since is not decided unseen). One append-only disposition is recorded per "
            "alert, in one transaction. 404 when the group has no open alert left."
        ),
        operation_id="access_alert_groups_disposition_create",
        request=GroupDispositionInput,
        responses={
            201: GroupDispositionOutput,
            404: OpenApiResponse(description="No open alert of that actor on that day in your organisation's log."),
        },
    )
    def post(self, request):
        _dpo_only(request)
        values = parsed(GroupDispositionInput, request.data)
        try:
            records = services.record_group_disposition(
                user=request.user, actor_id=values["actor"], actor_name=values["actor_name"], day=values["day"],
                up_to_seq=values["up_to"], disposition=values["disposition"], note=values["note"],
            )  # fmt: skip
        except services.AlertNotFound:
            raise NotFound("No open alerts of that actor on that day in your organisation's log.") from None
        return Response({"decided": len(records), "alerts": [record.event_id for record in records],
                         "disposition": values["disposition"]}, status=status.HTTP_201_CREATED)  # fmt: skip


class DispositionView(DPOView):
    # What OPTIONS describes for POST (DRF's metadata asks the view for its serializer).
    serializer_class = DispositionInput

    @extend_schema(
        tags=[DPO],
        summary="Record your decision on an alert",
        description=(
            "`no_concern` or `breach_confirmed` closes the alert; `investigating` keeps it open. Decisions are "
            "append-only: a later decision is a new record, and the alert shows the latest."
        ),
        operation_id="access_alerts_disposition_create",
        request=DispositionInput,
        responses={201: DispositionOutput},
    )
    def post(self, request, pk: int):
        _dpo_only(request)
        values = parsed(DispositionInput, request.data)
        try:
            record = services.record_disposition(user=request.user, event_id=pk, **values)
        except services.AlertNotFound:
            raise NotFound("No alert with that id in your organisation's log.") from None
        alert = selectors.alert_for_dpo(request.user, pk)
        # The decision only: the alert itself (who looked at which client) is read from the queue.
        return Response(
            {
                "id": record.pk,
                "alert": alert.pk,
                "open": alert.is_open,
                "disposition": record.disposition,
                "note": record.note,
                "decided_by": request.user.get_username(),
                "decided_at": record.decided_at,
            },
            status=status.HTTP_201_CREATED,
        )


class VerifyView(DPOView):
    @extend_schema(
        tags=[DPO],
        summary="Verify your organisation's hash chain",
        description=(
            "Walks the whole chain and names the first event whose hash or link does not match. With `against`, "
            "also checks that a head published earlier (in a report snapshot, say) is still in the chain, which "
            "catches a chain rewritten consistently from some point on."
        ),
        operation_id="access_log_verify",
        parameters=[
            OpenApiParameter(
                "against",
                str,
                pattern="^[0-9a-f]{64}$",
                description="A head hash published earlier (64 lowercase hex characters).",
            )
        ],
        responses=VerificationOutput,
    )
    def get(self, request):
        chain_id = _dpo_only(request)
        against = parsed(VerifyInput, request.query_params).get("against")
        return Response(verify_chain(organisation_ids=[chain_id], against=against).as_dict())


class ReferralAccessLogViewSet(ClientDataViewSet):
    """GET /referrals/{id}/access-history/ and /referrals/{id}/subject-access-export/."""

    purposes = {"access_history": firewall.Purpose.ACCESS_HISTORY, "subject_access_export": firewall.Purpose.SUBJECT_ACCESS}
    actions_logged_as = {"access_history": Action.READ, "subject_access_export": Action.EXPORT}
    context_purposes = {"subject_access_export": "subject access request"}
    filter_backends: list = []

    def safely_get_queryset(self) -> QuerySet:
        return selectors_of_consent.referral_with_provider()

    @extend_schema(
        tags=[DPO, THERAPIST, LEAD],
        summary="Who accessed this referral",
        description=(
            "Every access event about this referral on its provider's chain, oldest first, in pages: for the "
            "provider's DPO and the referral's assigned team. Anyone else gets 404, and the attempt is logged."
        ),
        responses=AccessEventOutput(many=True),
    )
    @action(detail=True, methods=["get"], url_path="access-history")
    def access_history(self, request, pk=None):
        referral = self.get_object()
        page = self.paginate_queryset(selectors.access_history(referral))
        return self.get_paginated_response([exports.event_as_dict(event) for event in page])

    @extend_schema(
        tags=[DPO],
        summary="Subject-access export of the referral's client",
        description=(
            "For the provider's DPO answering a subject-access request: the client's identifiers, every referral "
            "the provider holds for them with all records, and the history of access to them. The export is an "
            "access event for each referral in it."
        ),
        responses=SubjectAccessExportOutput,
    )
    @action(detail=True, methods=["get"], url_path="subject-access-export")
    def subject_access_export(self, request, pk=None):
        return Response(exports.subject_access_export(self.access, referral=self.get_object()))


router = SimpleRouter()
router.register("referrals", ReferralAccessLogViewSet, basename="referral-access-log")

urlpatterns: list = [
    path("access-events/", AccessEventListView.as_view(), name="access-event-list"),
    path("access-events/alerts/", AlertListView.as_view(), name="access-alert-list"),
    path("access-events/alerts/<int:pk>/disposition/", DispositionView.as_view(), name="access-alert-disposition"),
    path("access-events/alert-groups/", AlertGroupListView.as_view(), name="access-alert-group-list"),
    path("access-events/alert-groups/disposition/", GroupDispositionView.as_view(), name="access-alert-group-disposition"),
    path("access-events/verify/", VerifyView.as_view(), name="access-verify"),
    path("access-events/<int:pk>/", AccessEventDetailView.as_view(), name="access-event-detail"),
    path("", include(router.urls)),
]
