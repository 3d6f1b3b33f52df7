"""The compliance report pages: a reviewer's pilots, the report for a standard period, snapshots, CSV.

Every figure comes from consent.reports' published (suppressed) report; nothing here counts anything itself.
Who may read or freeze which pilot is consent.reports.selectors' to say.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.safestring import mark_safe

from colocation.models import Role
from consent.access import firewall
from consent.access.models import Action
from consent.access.report_access import ReportRequest, record_report_request
from consent.reports import selectors
from consent.reports.periods import PILOT_TO_DATE as PILOT_LABEL
from consent.reports.periods import Period, month, period_of_pilot, quarter, year
from consent.reports.render import report_csv, series_chart
from consent.reports.report import compliance_report
from consent.reports.snapshots import freeze_report, snapshot_document, verify_snapshot
from web import forms
from web.context import access_context
from web.pages import not_found, page, render_page, role_of

PILOT_TO_DATE = "to-date"
READERS = (Role.REVIEWER, Role.CLINICAL_LEAD, Role.DPO)


def _readers_only(request) -> None:
    # The firewall's rule first: a benefits-agency account gets no figure about clients, and the attempt is logged.
    firewall.refuse_benefits_agency(access_context(request), action=Action.LIST)
    if role_of(request.user) not in READERS:
        raise PermissionDenied("Compliance reports are for professional-body reviewers, clinical leads and DPOs.")


def standard_periods(pilot) -> list[tuple[str, str]]:
    """The periods a pilot's report can be asked for, newest first: the pilot to date, its years, quarters, months.

    Only standard periods, never arbitrary windows, so reports of overlapping windows cannot be differenced.
    """
    today = timezone.localdate()
    first, last = pilot.starts_on, min(pilot.ends_on or today, today)
    choices = [(PILOT_TO_DATE, "The pilot to date")]
    if last < first:
        return choices
    years = range(last.year, first.year - 1, -1)
    quarters = [quarter(y, q) for y in years for q in (4, 3, 2, 1)]
    months = [month(y, m) for y in years for m in range(12, 0, -1)]
    for period in [year(y) for y in years] + quarters + months:
        if period.start <= last and period.end >= first:
            choices.append((period.label, _period_name(period)))
    return choices


def _period_name(period: Period) -> str:
    if len(period.label) == 4:
        return f"Year {period.label}"
    if "Q" in period.label:
        return f"{period.label[5:]} {period.label[:4]} ({period.start:%b} to {period.end:%b})"
    return period.start.strftime("%B %Y")


def report_period(pilot, label: str) -> Period:
    """The period behind a label offered by standard_periods(), clipped to the pilot's dates as the API's."""
    return period_of_pilot(pilot, PILOT_LABEL if label == PILOT_TO_DATE else label)


def _log_request(request, pilot, kind: str, period: Period, fmt: str, object_id: str = "") -> None:
    """A report shown, downloaded or frozen here is a report request like the API's: logged, and counted for bursts."""
    record_report_request(context=access_context(request), pilot=pilot, request=kind, period_label=period.label,
                          format=fmt, object_id=object_id)  # fmt: skip


@page
def pilots(request):
    _readers_only(request)
    readable = list(selectors.pilots_reportable_by(request.user).prefetch_related("sites", "overseen_by"))
    return render_page(request, "web/pilots.html", {"pilots": readable})


def _pilot(request, pilot_id):
    return selectors.pilots_reportable_by(request.user).filter(pk=pilot_id).first()


def _chosen_period(request, pilot):
    choices = standard_periods(pilot)
    form = forms.PeriodForm(request.GET or {"period": PILOT_TO_DATE}, periods=choices)
    label = form.cleaned_data["period"] if form.is_valid() else PILOT_TO_DATE
    return form, label


def _chosen_report(request, pilot_id):
    """(pilot, period form, label, period) of the report a reader asked for; None for a pilot they may not read."""
    _readers_only(request)
    pilot = _pilot(request, pilot_id)
    if pilot is None:
        return None
    form, label = _chosen_period(request, pilot)
    return pilot, form, label, report_period(pilot, label)


@page
def report(request, pilot_id):
    chosen = _chosen_report(request, pilot_id)
    if chosen is None:
        return not_found(request)
    pilot, form, label, period = chosen
    published = compliance_report(pilot, period)
    _log_request(request, pilot, ReportRequest.READ, period, "html")
    snapshots = list(selectors.snapshots_readable_by(request.user).filter(pilot=pilot)[:20])
    may_freeze = selectors.pilots_freezable_by(request.user).filter(pk=pilot.pk).exists()
    return render_page(
        request, "web/report.html",
        {"pilot": pilot, "form": form, "label": label, "report": published, "totals": _rows(published["totals"]),
         "sites": [{"site": site, "rows": _rows(site)} for site in published["sites"]],
         "chart": mark_safe(series_chart("series", published["series"]) or ""),  # noqa: S308 - built by the report module, every text escaped
         "snapshots": snapshots, "may_freeze": may_freeze},
        status=400 if form.errors else 200,
    )  # fmt: skip


@page
def report_csv_download(request, pilot_id):
    chosen = _chosen_report(request, pilot_id)
    if chosen is None:
        return not_found(request)
    pilot, _, label, period = chosen
    response = HttpResponse(report_csv(compliance_report(pilot, period)), content_type="text/csv; charset=utf-8")
    _log_request(request, pilot, ReportRequest.READ, period, "csv")
    response["Content-Disposition"] = f'attachment; filename="compliance-report-{pilot.pk}-{label}.csv"'
    return response


@page
def freeze(request, pilot_id):
    _readers_only(request)
    pilot = selectors.pilots_freezable_by(request.user).filter(pk=pilot_id).first()
    if pilot is None:
        return not_found(request)
    if request.method != "POST":
        return redirect(f"/reports/{pilot.pk}/")
    label = request.POST.get("period", "")
    if label not in dict(standard_periods(pilot)):
        return render_page(request, "web/refused.html", {"message": "Choose one of the periods offered."}, status=400)
    period = report_period(pilot, label)
    snapshot = freeze_report(pilot=pilot, period=period, author=request.user)
    _log_request(request, pilot, ReportRequest.SNAPSHOT_FREEZE, period, "json", str(snapshot.pk))
    messages.success(request, f"Snapshot {snapshot.pk} frozen, SHA-256 {snapshot.sha256}.")
    return redirect(f"/reports/snapshots/{snapshot.pk}/")


@page
def snapshot(request, snapshot_id):
    _readers_only(request)
    stored = selectors.snapshots_readable_by(request.user).filter(pk=snapshot_id).first()
    if stored is None:
        return not_found(request)
    document = snapshot_document(stored)
    verification = verify_snapshot(stored) if request.GET.get("verify") else None
    return render_page(request, "web/snapshot.html", {"snapshot": stored, "document": document, "verification": verification,
                                                      "totals": _rows(document["report"]["totals"])})  # fmt: skip


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _shown(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0%}" if value <= 1 else str(value)
    return str(value)


SCOPE_SKIP = ("site", "separation")


def _rows(figures: dict) -> list[tuple[str, str, str]]:
    """(figure, category, shown value) for a table; the values are the published ones, `*` included."""
    rows = []
    for key, value in figures.items():
        if key in SCOPE_SKIP:
            continue
        if isinstance(value, dict):
            rows.extend((_title(key), category if key == "by_source_of_referral" else _title(category), _shown(n))
                        for category, n in value.items())  # fmt: skip
        elif not isinstance(value, list):
            rows.append((_title(key), "", _shown(value)))
    return rows
