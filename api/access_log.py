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
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from api.base import ClientDataViewSet
from api.context import access_context
from api.fields import ChoiceField, StrictSerializer, TextField
from colocation.models import OrganisationKind
from consent.access import exports, firewall, selectors, services
from consent.access.log import AccessContext, verify_chain
from consent.access.models import AccessEvent, Action, Disposition, Outcome
from consent.models import Referral

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


class VerifyInput(serializers.Serializer):
    against = serializers.RegexField(
        re.compile(r"^[0-9a-f]{64}$"),
        required=False,
        error_messages={"invalid": "Give a head hash as published earlier: 64 lowercase hexadecimal characters."},
    )


def _parsed(serializer_class, data) -> dict:
    parsed = serializer_class(data=data)
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data


def _dpo_only(request) -> int:
    """A benefits-agency account's attempt is logged and refused as a whole; anyone else not a DPO is refused."""
    firewall.refuse_list_if_not_allowed(access_context(request))
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


LOG_RESPONSES = {
    (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Paginated access events, newest first"),
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="?format=csv: every matching event, in chain order"),
    (200, "application/fhir+json"): OpenApiResponse(
        OpenApiTypes.OBJECT, description="?format=fhir: a FHIR R4 searchset Bundle of AuditEvent, one page"
    ),
}


# ---- views -------------------------------------------------------------------------------------------------


class DPOView(GenericAPIView):
    """Reads of the DPO's own organisation's log. Errors are JSON whatever format was asked for."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer, FHIRRenderer]
    filter_backends: list = []

    def get_queryset(self):
        # Only the browsable API asks (for a filter form it then leaves out): the views read through selectors.
        return AccessEvent.objects.none()

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400 and getattr(request, "accepted_renderer", None).__class__ in (CSVRenderer, FHIRRenderer):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class AccessEventListView(DPOView):
    @extend_schema(
        summary="The access log of the DPO's organisation",
        operation_id="access_events_list",
        parameters=[
            OpenApiParameter("actor", str, description="user id or username"),
            OpenApiParameter("referral", OpenApiTypes.UUID),
            OpenApiParameter("action", str, enum=Action.values),
            OpenApiParameter("outcome", str, enum=Outcome.values),
            OpenApiParameter("organisation_kind", str, enum=OrganisationKind.values),
            OpenApiParameter("occurred_after", str, description="date or ISO 8601 date and time"),
            OpenApiParameter("occurred_before", str, description="date or ISO 8601 date and time"),
            OpenApiParameter("format", str, enum=["json", "csv", "fhir"]),
        ],
        responses=LOG_RESPONSES,
    )
    def get(self, request):
        _dpo_only(request)
        filters = selectors.EventFilters(**_parsed(EventFilterInput, request.query_params))
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
        summary="One access event of the DPO's organisation",
        operation_id="access_events_retrieve",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, pk: int):
        _dpo_only(request)
        event = selectors.events_for_dpo(request.user).filter(pk=pk).first()
        if event is None:
            raise NotFound("No access event with that id in your organisation's log.")
        return Response(exports.event_as_dict(event))


class AlertListView(DPOView):
    @extend_schema(
        summary="The alert queue: open alerts first",
        parameters=[OpenApiParameter("state", str, enum=["open", "closed"])],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        _dpo_only(request)
        state = _parsed(AlertFilterInput, request.query_params).get("state")
        page = self.paginate_queryset(selectors.alerts_for_dpo(request.user, state=state))
        return self.get_paginated_response([_alert_as_dict(event) for event in page])


class DispositionView(DPOView):
    # What the browsable API's form is built from (without it, any answer rendered there was a 500).
    serializer_class = DispositionInput

    @extend_schema(
        summary="Record a disposition on an alert (append-only: a new decision is a new record)",
        request=DispositionInput,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request, pk: int):
        _dpo_only(request)
        values = _parsed(DispositionInput, request.data)
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
        summary="Walk the organisation's hash chain: {verified, events_checked, first_mismatch, heads}",
        parameters=[
            OpenApiParameter("against", str, description="a head hash published earlier, to check it is still in the chain")
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        chain_id = _dpo_only(request)
        against = _parsed(VerifyInput, request.query_params).get("against")
        return Response(verify_chain(organisation_ids=[chain_id], against=against).as_dict())


class ReferralAccessLogViewSet(ClientDataViewSet):
    """GET /referrals/{id}/access-history/ and /referrals/{id}/subject-access-export/."""

    purposes = {"access_history": firewall.Purpose.ACCESS_HISTORY, "subject_access_export": firewall.Purpose.SUBJECT_ACCESS}
    actions_logged_as = {"access_history": Action.READ, "subject_access_export": Action.EXPORT}
    filter_backends: list = []

    def safely_get_queryset(self) -> QuerySet:
        return Referral.objects.select_related("provider")

    @extend_schema(summary="Every access event about this referral's client (the DPO, or the assigned team)",
                   responses={200: OpenApiTypes.OBJECT, 404: None})  # fmt: skip
    @action(detail=True, methods=["get"], url_path="access-history")
    def access_history(self, request, pk=None):
        referral = self.get_object()
        page = self.paginate_queryset(selectors.access_history(referral))
        return self.get_paginated_response([exports.event_as_dict(event) for event in page])

    @extend_schema(summary="Everything held about the client, with its access history (the provider's DPO)",
                   responses={200: OpenApiTypes.OBJECT, 404: None})  # fmt: skip
    @action(detail=True, methods=["get"], url_path="subject-access-export")
    def subject_access_export(self, request, pk=None):
        context: AccessContext = access_context(request, purpose="subject access request")
        return Response(exports.subject_access_export(context, pk))


router = SimpleRouter()
router.register("referrals", ReferralAccessLogViewSet, basename="referral-access-log")

urlpatterns: list = [
    path("access-events/", AccessEventListView.as_view(), name="access-event-list"),
    path("access-events/alerts/", AlertListView.as_view(), name="access-alert-list"),
    path("access-events/alerts/<int:pk>/disposition/", DispositionView.as_view(), name="access-alert-disposition"),
    path("access-events/verify/", VerifyView.as_view(), name="access-verify"),
    path("access-events/<int:pk>/", AccessEventDetailView.as_view(), name="access-event-detail"),
    path("", include(router.urls)),
]
