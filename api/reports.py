"""Compliance reports and their snapshots: thin views over consent.reports (access, figures, renderings)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.context import access_context
from consent.access import firewall
from consent.access.report_access import ReportRequest, record_report_request
from consent.reports import selectors
from consent.reports.periods import ACCEPTED_FORMS, period_of_pilot
from consent.reports.render import report_csv, report_html
from consent.reports.report import compliance_report
from consent.reports.snapshots import freeze_report, snapshot_document, verify_snapshot

FORMATS = ("json", "csv", "html")
PERIOD_FIELDS = ("period",)


class CSVReportRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return report_csv(data)


class HTMLReportRenderer(BaseRenderer):
    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        view = (renderer_context or {}).get("view")
        return report_html(data, snapshot=getattr(view, "snapshot_meta", None))


class ReportRenderingView(APIView):
    """JSON by default; ?format=csv or ?format=html render the same published report. Errors are always JSON."""

    renderer_classes = [JSONRenderer, CSVReportRenderer, HTMLReportRenderer]

    def perform_content_negotiation(self, request, force=False):
        requested = request.query_params.get("format")
        if not force and requested is not None and requested not in FORMATS:
            raise DjangoValidationError(
                {"format": f"{requested[:20]!r} is not a report format; use one of: {', '.join(FORMATS)}."}
            )
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request, response, *args, **kwargs):
        # A 400 or 404 explains itself in the project's JSON error shape, whatever format was asked for.
        if response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code < 400 and getattr(request.accepted_renderer, "format", "") in ("csv", "html"):
            name = getattr(self, "download_name", "compliance-report")
            disposition = "attachment" if request.accepted_renderer.format == "csv" else "inline"
            response["Content-Disposition"] = f'{disposition}; filename="{name}.{request.accepted_renderer.format}"'
        return response


def _refuse_benefits_agency(request) -> None:
    """The firewall's rule, first: a benefits-agency account gets no figure about clients, logged as denied."""
    firewall.refuse_list_if_not_allowed(access_context(request))


def _period_from(values, pilot):
    """The standard period asked for, clipped to the pilot; a 400 naming the accepted forms for anything else."""
    unknown = [key for key in values if key not in PERIOD_FIELDS and key != "format"]
    if unknown:
        raise DjangoValidationError(
            {key: f"Unknown field; accepted: {', '.join(PERIOD_FIELDS)} (and format). {ACCEPTED_FORMS}" for key in unknown}
        )
    return period_of_pilot(pilot, values.get("period"))


def _requested_format(request) -> str:
    return getattr(request.accepted_renderer, "format", None) or "json"


PERIOD_PARAMETERS = [
    OpenApiParameter(
        "period", OpenApiTypes.STR, required=True,
        description="A standard period only: 2026, 2026-Q3, 2026-07 or pilot (the pilot to date); clipped to the pilot's dates",
    ),
    OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="json (default), csv or html"),
]  # fmt: skip
REPORT_SCHEMA = OpenApiResponse(OpenApiTypes.OBJECT, description="The published (suppressed) report; see DESIGN.md")
ERRORS = {
    (400, "application/json"): OpenApiResponse(
        OpenApiTypes.OBJECT, description="A bad period or format: the accepted forms, field by field"
    ),
    (403, "application/json"): OpenApiResponse(
        OpenApiTypes.OBJECT, description="A benefits-agency account: never any figure about clients"
    ),
    (404, "application/json"): OpenApiResponse(
        OpenApiTypes.OBJECT, description="No such pilot or snapshot, or not one this account may read"
    ),
}
NOT_READABLE = {key: value for key, value in ERRORS.items() if key[0] != 400}
RENDERINGS = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row per published figure"),
    (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="A printable page with inline SVG charts"),
}
SNAPSHOT_SCHEMA = inline_serializer(
    "ComplianceReportSnapshot",
    {
        "id": serializers.IntegerField(),
        "pilot": serializers.IntegerField(),
        "period": serializers.CharField(),
        "sha256": serializers.CharField(),
        "frozen_by": serializers.CharField(),
        "frozen_at": serializers.DateTimeField(),
        "code_version": serializers.CharField(),
        "access_log_heads": serializers.DictField(),
        "report": serializers.DictField(),
    },
)


def _snapshot_output(snapshot) -> dict:
    document = snapshot_document(snapshot)
    return {
        "id": snapshot.pk,
        "pilot": snapshot.pilot_id,
        "period": snapshot.period_label,
        "sha256": snapshot.sha256,
        "frozen_by": document.get("frozen_by"),
        "frozen_at": document.get("frozen_at"),
        "code_version": document.get("code_version"),
        "access_log_heads": document.get("access_log_heads"),
        "report": document.get("report"),
    }


class ComplianceReportView(ReportRenderingView):
    @extend_schema(
        parameters=PERIOD_PARAMETERS,
        responses={(200, "application/json"): REPORT_SCHEMA, **RENDERINGS, **ERRORS},
        summary="The pilot's compliance report",
    )
    def get(self, request, pilot_id: int):
        _refuse_benefits_agency(request)
        pilot = selectors.pilots_reportable_by(request.user).filter(pk=pilot_id).first()
        if pilot is None:
            raise NotFound("No pilot found with that id.")
        period = _period_from(request.query_params, pilot)
        self.download_name = f"compliance-report-{pilot.pk}-{period.label}"
        report = compliance_report(pilot, period)
        record_report_request(
            context=access_context(request), pilot=pilot, request=ReportRequest.READ, period_label=period.label,
            format=_requested_format(request),
        )  # fmt: skip
        return Response(report)


class SnapshotCreateView(APIView):
    @extend_schema(
        request=inline_serializer(
            "FreezeReport",
            {
                "period": serializers.CharField(help_text="2026, 2026-Q3, 2026-07 or pilot (the pilot to date)"),
            },
        ),
        responses={201: SNAPSHOT_SCHEMA, **ERRORS},
        summary="Freeze a period's report as a snapshot",
    )
    def post(self, request, pilot_id: int):
        _refuse_benefits_agency(request)
        pilot = selectors.pilots_freezable_by(request.user).filter(pk=pilot_id).first()
        if pilot is None:
            raise NotFound("No pilot found with that id.")
        if not isinstance(request.data, dict):
            raise DjangoValidationError({"period": f"Send a JSON object with period. {ACCEPTED_FORMS}"})
        period = _period_from(request.data, pilot)
        snapshot = freeze_report(pilot=pilot, period=period, author=request.user)
        record_report_request(
            context=access_context(request), pilot=pilot, request=ReportRequest.SNAPSHOT_FREEZE, period_label=period.label,
            format="json", object_id=str(snapshot.pk),
        )  # fmt: skip
        return Response(_snapshot_output(snapshot), status=status.HTTP_201_CREATED)


def _readable_snapshot(request, snapshot_id: int):
    _refuse_benefits_agency(request)
    snapshot = selectors.snapshots_readable_by(request.user).filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No compliance report snapshot found with that id.")
    return snapshot


class SnapshotView(ReportRenderingView):
    @extend_schema(
        parameters=[PERIOD_PARAMETERS[-1]],
        responses={(200, "application/json"): SNAPSHOT_SCHEMA, **RENDERINGS, **NOT_READABLE},
        summary="A stored snapshot (?format=csv or html renders its report)",
    )
    def get(self, request, snapshot_id: int):
        snapshot = _readable_snapshot(request, snapshot_id)
        output = _snapshot_output(snapshot)
        requested = _requested_format(request)
        record_report_request(
            context=access_context(request), pilot=snapshot.pilot, request=ReportRequest.SNAPSHOT_READ,
            period_label=snapshot.period_label, format=requested, object_id=str(snapshot.pk),
        )  # fmt: skip
        if requested in ("csv", "html"):
            self.snapshot_meta = {**output, "report": None}
            self.download_name = f"compliance-report-snapshot-{snapshot.pk}"
            return Response(output["report"])
        return Response(output)


class SnapshotVerifyView(APIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "SnapshotVerification",
                {
                    "id": serializers.IntegerField(),
                    "verified": serializers.BooleanField(),
                    "sha256": serializers.CharField(),
                    "sha256_recomputed": serializers.CharField(),
                    "access_log_heads": serializers.DictField(),
                },
            ),
            **NOT_READABLE,
        },
        summary="Whether the stored snapshot still matches its SHA-256",
    )
    def get(self, request, snapshot_id: int):
        snapshot = _readable_snapshot(request, snapshot_id)
        result = verify_snapshot(snapshot)
        record_report_request(
            context=access_context(request), pilot=snapshot.pilot, request=ReportRequest.SNAPSHOT_VERIFY,
            period_label=snapshot.period_label, format="json", object_id=str(snapshot.pk),
        )  # fmt: skip
        return Response(result)


urlpatterns = [
    path("pilots/<int:pilot_id>/compliance-report/", ComplianceReportView.as_view(), name="compliance-report"),
    path("pilots/<int:pilot_id>/compliance-reports/", SnapshotCreateView.as_view(), name="compliance-report-freeze"),
    path("compliance-reports/<int:snapshot_id>/", SnapshotView.as_view(), name="compliance-report-snapshot"),
    path("compliance-reports/<int:snapshot_id>/verify/", SnapshotVerifyView.as_view(), name="compliance-report-verify"),
]
