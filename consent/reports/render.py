"""Renderings of a published compliance report: CSV and a printable HTML page with server-drawn SVG charts.

Each takes the output of report.publish (or a snapshot of it) and nothing else, so no rendering can show
a figure that disclosure control has not already passed. The charts are inline SVG built here: no
JavaScript, no CDN, and they print.
"""

import csv
import io

from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import mark_safe

from consent.reports.disclosure import STAR

ALL_SITES = "All sites"
SCOPE_KEYS = (
    "referrals_received",
    "by_pathway",
    "by_source_of_referral",
    "by_how_heard",
    "explicit_consent",
    "explicit_consent_share",
    "median_days_to_consent",
    "voluntariness",
    "remained_voluntary",
    "remained_voluntary_share",
    "declined",
    "withdrawals",
    "withdrawals_citing_pressure",
    "felt_not_free_to_stop",
    "employment_goal_raised_by_benefits_agency",
    "intake_check_recorded",
    "benefits_agency_access_allowed",
    "benefits_agency_access_denied",
    "access_log_verified",
)
LABELS = {
    "referrals_received": "Referrals received",
    "by_pathway": "By pathway",
    "by_source_of_referral": "By source of referral",
    "by_how_heard": "By how they heard",
    "explicit_consent": "Explicit consent recorded",
    "explicit_consent_share": "Share with explicit consent",
    "median_days_to_consent": "Median days from referral to consent",
    "voluntariness": "Voluntariness at the end of the period",
    "remained_voluntary": "Remained voluntary",
    "remained_voluntary_share": "Share of those who consented that remained voluntary",
    "declined": "Declined after explanation",
    "withdrawals": "Withdrawals",
    "withdrawals_citing_pressure": "Withdrawals citing pressure",
    "felt_not_free_to_stop": "Checks where the client did not feel free to stop",
    "employment_goal_raised_by_benefits_agency": "Employment goal raised by the benefits agency",
    "intake_check_recorded": "Intake voluntariness check recorded",
    "benefits_agency_access_allowed": "Benefits-agency access to client data allowed (must be 0)",
    "benefits_agency_access_denied": "Benefits-agency access attempts denied",
    "access_log_verified": "Access-log chain verified",
    "referred_by_jobcentre_M5": "Referred by Jobcentre Plus (source M5)",
    "not_voluntary": "Not voluntary",
    "mandated_assessment": "Mandated assessment pathway",
    "benefit_condition": "Benefit condition pathway",
    "unknown": "Voluntariness unknown (no consent or intake check yet)",
    "sites_not_fully_separated": "Sites not fully separated",
    "sites_not_reviewed_within_a_year": "Sites not reviewed within a year",
    "counted_without_exclusions": "Counted without exclusions",
}

# ---- CSV ---------------------------------------------------------------------------------------------------


def _cell(value) -> str:
    """A value as CSV text; text a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _scope_rows(scope: str, figures: dict):
    for key in SCOPE_KEYS:
        value = figures.get(key)
        if isinstance(value, dict):
            for category, n in value.items():
                yield ["figures", scope, key, category, _cell(n)]
        else:
            yield ["figures", scope, key, "", _cell(value)]


def report_csv(report: dict) -> str:
    """The report in long form: one row per figure (section, scope, metric, category, value)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "scope", "metric", "category", "value"])
    writer.writerow(["report", "", "pilot", "", _cell(report["pilot"]["name"])])
    writer.writerow(["report", "", "period", "", _cell(report["period"]["label"])])
    writer.writerow(["report", "", "period_start", "", report["period"]["start"]])
    writer.writerow(["report", "", "period_end", "", report["period"]["end"]])
    writer.writerow(["report", "", "disclosure_control", "", report["disclosure_control"]])
    for principle in report["principles"]:
        writer.writerow(["principles", ALL_SITES, principle["key"], "verdict", principle["verdict"]])
        for name, value in principle["evidence"].items():
            writer.writerow(["principles", ALL_SITES, principle["key"], name, _cell(value)])
    writer.writerows(_scope_rows(ALL_SITES, report["totals"]))
    for site in report["sites"]:
        name = _cell(site["site"]["name"])
        writer.writerows(_scope_rows(name, site))
        for item, value in site["separation"].items():
            writer.writerow(["separation", name, item, "", _cell(value)])
    for point in report["series"]:
        for metric in ("referrals_received", "remained_voluntary"):
            writer.writerow(["series", ALL_SITES, metric, point["period"], _cell(point[metric])])
    return out.getvalue()


# ---- SVG charts --------------------------------------------------------------------------------------------

INK, ACCENT, PALE, WITHHELD_FILL = "#1d2b36", "#005eb8", "#8fb8de", "#d8dde0"


def _number(value) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _scale_max(values) -> int:
    top = max([_number(v) for v in values] + [1])
    # A round top for the axis: the next multiple of 5 (counts are published in fives).
    return int(-(-top // 5) * 5)


def _withheld_pattern(pattern_id: str) -> str:
    return (
        f'<defs><pattern id="{pattern_id}" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{WITHHELD_FILL}"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="#aeb7bd" stroke-width="2"/></pattern></defs>'
    )


def bar_chart(chart_id: str, title: str, items: list[tuple[str, object]]) -> str:
    """A horizontal bar chart of published counts; a withheld count is a hatched stub labelled *."""
    row, label_width, bar_width, top = 28, 230, 380, 34
    height = top + row * len(items) + 10
    maximum = _scale_max(v for _, v in items)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{chart_id}-t" class="chart" '
        f'width="{label_width + bar_width + 70}" height="{height}" viewBox="0 0 {label_width + bar_width + 70} {height}">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        _withheld_pattern(f"{chart_id}-w"),
        f'<text x="0" y="18" font-size="15" font-weight="bold" fill="{INK}">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(items):
        y = top + index * row
        parts.append(f'<text x="0" y="{y + 17}" font-size="13" fill="{INK}">{escape(label)}</text>')
        if value == STAR:
            parts.append(f'<rect x="{label_width}" y="{y + 4}" width="24" height="18" fill="url(#{chart_id}-w)"/>')
            parts.append(f'<text x="{label_width + 30}" y="{y + 17}" font-size="13" fill="{INK}">* (1-7 or withheld)</text>')
            continue
        width = round(bar_width * _number(value) / maximum)
        parts.append(f'<rect x="{label_width}" y="{y + 4}" width="{max(width, 1)}" height="18" fill="{ACCENT}"/>')
        parts.append(f'<text x="{label_width + width + 6}" y="{y + 17}" font-size="13" fill="{INK}">{escape(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def series_chart(chart_id: str, series: list[dict]) -> str:
    """Grouped columns per month or quarter: referrals received and how many remained voluntary."""
    if not series:
        return ""
    left, top, plot_height, group = 44, 46, 220, 64
    width = left + group * len(series) + 20
    height = top + plot_height + 52
    maximum = _scale_max(v for point in series for v in (point["referrals_received"], point["remained_voluntary"]))
    title = "Referrals received and remained voluntary, by " + ("quarter" if "Q" in series[0]["period"] else "month")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{chart_id}-t" class="chart" '
        f'width="{max(width, 480)}" height="{height}" viewBox="0 0 {max(width, 480)} {height}">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        _withheld_pattern(f"{chart_id}-w"),
        f'<text x="0" y="16" font-size="15" font-weight="bold" fill="{INK}">{escape(title)}</text>',
        f'<rect x="{left}" y="24" width="12" height="12" fill="{ACCENT}"/>'
        f'<text x="{left + 16}" y="34" font-size="12" fill="{INK}">received</text>'
        f'<rect x="{left + 90}" y="24" width="12" height="12" fill="{PALE}"/>'
        f'<text x="{left + 106}" y="34" font-size="12" fill="{INK}">remained voluntary</text>'
        f'<rect x="{left + 240}" y="24" width="12" height="12" fill="url(#{chart_id}-w)"/>'
        f'<text x="{left + 256}" y="34" font-size="12" fill="{INK}">withheld (*)</text>',
    ]
    base = top + plot_height
    # Ticks on multiples of 5 where the scale allows, as the counts themselves are.
    for tick in sorted({0, 5 * round(maximum / 10) if maximum >= 10 else maximum // 2, maximum}):
        y = base - plot_height * tick / maximum
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#e8edee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="{INK}">{tick}</text>')
    for index, point in enumerate(series):
        x = left + 8 + index * group
        for offset, key, fill in ((0, "referrals_received", ACCENT), (24, "remained_voluntary", PALE)):
            value = point[key]
            if value == STAR:
                parts.append(f'<rect x="{x + offset}" y="{base - 14}" width="22" height="14" fill="url(#{chart_id}-w)"/>')
                parts.append(f'<text x="{x + offset + 11}" y="{base - 18}" font-size="11" text-anchor="middle">*</text>')
                continue
            bar = plot_height * _number(value) / maximum
            parts.append(f'<rect x="{x + offset}" y="{base - bar:.1f}" width="22" height="{bar:.1f}" fill="{fill}"/>')
            parts.append(
                f'<text x="{x + offset + 11}" y="{base - bar - 4:.1f}" font-size="11" text-anchor="middle">{escape(value)}</text>'
            )
        parts.append(
            f'<text x="{x + 23}" y="{base + 16}" font-size="11" text-anchor="middle" fill="{INK}">{escape(point["period"])}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="{INK}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _display(value) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    if isinstance(value, float):
        return f"{value:.0%}" if value <= 1 else str(value)
    return str(value)


def _rows(figures: dict) -> list[tuple[str, str, str]]:
    """(label, category, shown value) rows of one scope's figures for the HTML tables."""
    rows = []
    for key in SCOPE_KEYS:
        value = figures.get(key)
        if isinstance(value, dict):
            for category, n in value.items():
                rows.append((LABELS[key], _title(category) if key != "by_source_of_referral" else category, _display(n)))
        elif key == "median_days_to_consent":
            rows.append((LABELS[key], "", "\u2013" if value is None else str(value)))
        else:
            rows.append((LABELS[key], "", _display(value)))
    return rows


def _principle_rows(principles: list[dict]) -> list[dict]:
    return [
        {**p, "css": p["verdict"].replace(" ", "-"),
         "evidence_rows": [(LABELS.get(name, _title(name)), _display(value)) for name, value in p["evidence"].items()]}
        for p in principles
    ]  # fmt: skip


def report_html(report: dict, *, snapshot: dict | None = None) -> str:
    """A page a reviewer can read and print: the principle table first, then the charts, then the figures."""
    totals = report["totals"]
    charts = [
        series_chart("series", report["series"]),
        bar_chart(
            "voluntariness",
            "Voluntariness at the end of the period",
            [(_title(k), v) for k, v in totals["voluntariness"].items()],
        ),
        bar_chart("pathways", "Referrals by pathway", [(_title(k), v) for k, v in totals["by_pathway"].items()]),
        bar_chart("sources", "Referrals by source of referral", list(totals["by_source_of_referral"].items())),
    ]
    context = {
        "report": report,
        "snapshot": snapshot,
        "charts": [mark_safe(chart) for chart in charts if chart],  # noqa: S308 - built above, every text escaped
        "totals_rows": _rows(totals),
        "sites": [{"site": site, "rows": _rows(site)} for site in report["sites"]],
        "principles": _principle_rows(report["principles"]),
    }
    return render_to_string("reports/compliance_report.html", context)
