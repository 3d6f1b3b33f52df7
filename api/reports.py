"""Compliance reports and their snapshots: thin views over consent.reports (access, figures, renderings)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.context import access_context
from api.query import DeclaredQueryOnly
from api.report_outputs import (
    PERIOD_PATTERN,
    ComplianceReportOutput,
    FreezeReportInput,
    SnapshotOutput,
    SnapshotVerificationOutput,
)
from api.schema import DPO, LEAD, REVIEWER
from consent.access import firewall
from consent.access.models import Action
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


class ReportView(DeclaredQueryOnly, APIView):
    """A view of reports: the firewall's rule refuses (and logs) a benefits-agency account before anything else."""

    refuses_benefits_agency_first = True


class ReportRenderingView(ReportView):
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
        # A 400 or 404 explains itself in the project's JSON error shape, whatever format was asked for; so
        # does OPTIONS, whose answer describes the view rather than holding a report.
        if response.status_code >= 400 or request.method == "OPTIONS":
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code < 400 and getattr(request.accepted_renderer, "format", "") in ("csv", "html"):
            name = getattr(self, "download_name", "compliance-report")
            disposition = "attachment" if request.accepted_renderer.format == "csv" else "inline"
            response["Content-Disposition"] = f'{disposition}; filename="{name}.{request.accepted_renderer.format}"'
        return response


def _refuse_benefits_agency(request) -> None:
    """The firewall's rule, first: a benefits-agency account gets no figure about clients, logged as denied."""
    firewall.refuse_benefits_agency(access_context(request), action=Action.LIST)


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
    OpenApiParameter("period", {"type": "string", "pattern": PERIOD_PATTERN}, required=True,
                     description="A standard period only: a year (2026), a quarter (2026-Q3), a month (2026-07) or the "
                                 "pilot to date (pilot), clipped to the pilot's dates. Other windows are refused."),
    OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="json (default), csv or html."),
]  # fmt: skip
RENDERINGS = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="?format=csv: one row per published figure."),
    (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="?format=html: a printable page with inline SVG charts."),
}
READERS = [REVIEWER, LEAD, DPO]


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
    def initial(self, request, *args, **kwargs):
        try:
            super().initial(request, *args, **kwargs)
        except ValidationError as error:
            # A window (from, to) is not a report's period: say which periods are.
            if isinstance(error.detail, dict):
                for name in ("from", "to"):
                    if name in error.detail:
                        error.detail[name] = [*error.detail[name], ACCEPTED_FORMS]
            raise

    @extend_schema(
        tags=READERS,
        summary="A pilot's compliance report for a period",
        description=(
            "For reviewers of a professional body overseeing the pilot, and the clinical leads and DPOs of its "
            "providers. Figures per site and in total, the six principles with their verdicts, and a series for the "
            "trend, with small numbers suppressed before anything leaves the server. Every request is an access event."
        ),
        operation_id="compliance_report_retrieve",
        parameters=PERIOD_PARAMETERS,
        responses={(200, "application/json"): ComplianceReportOutput, **RENDERINGS},
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


class SnapshotCreateView(ReportView):
    @extend_schema(
        tags=[LEAD, DPO],
        summary="Freeze a period's report as a snapshot",
        description=(
            "For the clinical leads and DPOs of the pilot's providers: stores the report exactly as produced, with "
            "its SHA-256, the author, the time, the code version and the heads of the providers' access-log chains, "
            "so a professional body can check later that what it was sent is what the system produced."
        ),
        operation_id="compliance_report_freeze",
        request=FreezeReportInput,
        responses={201: SnapshotOutput},
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
        tags=READERS,
        summary="A stored report snapshot",
        description=(
            "The snapshot as frozen, for those who may read the pilot's reports. `?format=csv` or `?format=html` "
            "render its report, exactly as stored."
        ),
        operation_id="compliance_report_snapshot_retrieve",
        parameters=[PERIOD_PARAMETERS[-1]],
        responses={(200, "application/json"): SnapshotOutput, **RENDERINGS},
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


class SnapshotVerifyView(ReportView):
    @extend_schema(
        tags=READERS,
        summary="Check a snapshot is unchanged",
        description=(
            "Recomputes the SHA-256 of the stored snapshot (`verified`), and checks that each access-log head "
            "published with it is still in its chain."
        ),
        operation_id="compliance_report_snapshot_verify",
        responses=SnapshotVerificationOutput,
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
