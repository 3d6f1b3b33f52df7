"""The pilot compliance report: raw figures in, the published (suppressed) report out.

`publish` is the one place disclosure control is applied. Every rendering (JSON, CSV, HTML), every
snapshot and the management command start from its output; the raw figures never leave this module.
"""

from datetime import date

from dateutil.relativedelta import relativedelta

from colocation.models import Pilot, Site
from consent.access.log import verify_chain
from consent.models import Pathway
from consent.reports.audit import Table, add_report, withheld_groups, withheld_in_pilot
from consent.reports.disclosure import DISCLOSURE_CONTROL, STAR, share_of_published, suppress_median
from consent.reports.metrics import (
    ACCESS_COUNTS,
    BREAKDOWNS,
    JOBCENTRE_SOURCE,
    SIMPLE_COUNTS,
    Figures,
    PilotFigures,
    pilot_figures,
)
from consent.reports.periods import Period, period_of_pilot
from consent.selectors import Voluntariness

TOTAL = "total"
MET, NOT_MET, INSUFFICIENT = "met", "not met", "insufficient data"
PRINCIPLES = (
    "voluntary_participation",
    "no_information_sharing",
    "client_led_goals",
    "appropriate_environment",
    "free_to_withdraw",
    "honest_counting",
)
PRINCIPLE_TITLES = {
    "voluntary_participation": "Therapy is completely voluntary, unrelated to benefit conditionality",
    "no_information_sharing": "No information is shared with the benefits agency",
    "client_led_goals": "The focus is what the client brings; employment only if the client chooses it",
    "appropriate_environment": "A therapeutically appropriate, separate environment",
    "free_to_withdraw": "The client is free to withdraw with no consequence",
    "honest_counting": "Everyone referred is counted, including those who declined",
}
# A separation checklist older than this at the end of the period is not evidence of the present.
REVIEW_VALID_FOR = relativedelta(years=1)
# The plain counts of a scope, in the order they are published.
PUBLISHED_COUNTS = (*SIMPLE_COUNTS, *ACCESS_COUNTS)
# remained_voluntary is the voluntary status count at the end of the period: one cell under two names.
VOLUNTARY = ("voluntariness", Voluntariness.VOLUNTARY)


class _Cells:
    """The published figure of every count of one report: the pilot's audited lattice, seen from this period.

    With the lattice of every report of the pilot (figures.lattice), the cells withheld are those of the whole
    lattice (audit.Table.withheld: the HES and room rules in each report, then the audit across reports), so a
    cell publishes the same figure in every report, series and format it appears in. Without one (figures made
    up for one report), the report's own cells are audited alone, and its series points are shown as they
    stand. Access attempts are events, not referrals: their own groups (the pilot over its sites), cell key 0.
    """

    def __init__(self, figures: PilotFigures):
        lattice = figures.lattice
        self.table = Table()
        self.period_key = lattice.period_of(figures.period).key if lattice else "report"
        add_report(self.table, self.period_key, {TOTAL: figures.total, **figures.by_site})
        self.series = {}
        for point in figures.series:
            key = lattice.period_of(point.period).key if lattice else ("series", point.period.label)
            if (point.period.start, point.period.end) == (figures.period.start, figures.period.end):
                key = self.period_key
            self.series[point.period.label] = key
            if key != self.period_key:
                self.table.add((key, TOTAL, "referrals_received"), point.referrals_received, point.referrals_received_key)
                self.table.add((key, TOTAL, *VOLUNTARY), point.remained_voluntary, point.remained_voluntary_key)
                if lattice is None:
                    # A report alone: its series points are other reports' cells, shown as they stand.
                    self.table.fixed.update({(key, TOTAL, "referrals_received"), (key, TOTAL, *VOLUNTARY)})
        self.withheld = withheld_in_pilot(lattice) if lattice else self.table.withheld()
        self._add_access_counts(figures)

    def _add_access_counts(self, figures: PilotFigures) -> None:
        scopes = {TOTAL: figures.total, **figures.by_site}
        values = {(scope, name): f.counts[name] for scope, f in scopes.items() for name in ACCESS_COUNTS}
        # Attempts aimed at no referral are in the total only: it is at least the sum, which can only withhold more.
        groups = [((TOTAL, name), [(site, name) for site in figures.by_site]) for name in ACCESS_COUNTS if figures.by_site]
        self.access = Table()
        self.access_withheld = withheld_groups(values, groups, self.access)

    def shown(self, scope, *path) -> int | str:
        if path[0] in ACCESS_COUNTS:
            return self.access.shown((scope, *path), self.access_withheld)
        if path == ("remained_voluntary",):
            path = VOLUNTARY
        return self.table.shown((self.period_key, scope, *path), self.withheld)

    def shown_in_series(self, label: str, name: str) -> int | str:
        path = VOLUNTARY if name == "remained_voluntary" else (name,)
        return self.table.shown((self.series[label], TOTAL, *path), self.withheld)


def _median(value: float | None, *, resting_on) -> float | int | str | None:
    shown = suppress_median(value, resting_on=resting_on)
    if isinstance(shown, float):
        return int(shown) if shown.is_integer() else round(shown, 1)
    return shown


def _scope(cells: _Cells, scope, figures: Figures, verified: bool) -> dict:
    """The published keys of one scope (a site or the whole pilot), in the order of docs/disclosure-control.md's tables."""
    received, consent = cells.shown(scope, "referrals_received"), cells.shown(scope, "explicit_consent")
    remained = cells.shown(scope, "remained_voluntary")
    published = {
        "referrals_received": received,
        **{b: {key: cells.shown(scope, b, key) for key in getattr(figures, b)} for b in BREAKDOWNS[:3]},
        "explicit_consent": consent,
        "explicit_consent_share": share_of_published(consent, received),
        "median_days_to_consent": _median(figures.median_days_to_consent, resting_on=consent),
        "voluntariness": {key: cells.shown(scope, "voluntariness", key) for key in Voluntariness.ALL},
        "remained_voluntary": remained,
        # Of those who consented: remaining voluntary is only possible with explicit consent.
        "remained_voluntary_share": share_of_published(remained, consent),
    }
    published.update({name: cells.shown(scope, name) for name in PUBLISHED_COUNTS})
    published["access_log_verified"] = verified
    return published


def _separation(site: Site) -> dict:
    return {
        **{name: getattr(site, name) for name in Site.SEPARATION_FIELDS},
        "last_reviewed": site.separation_last_reviewed.isoformat() if site.separation_last_reviewed else None,
    }


def _fully_separated(site: Site) -> bool:
    return all(getattr(site, name) for name in Site.SEPARATION_FIELDS)


def _reviewed_recently(site: Site, as_at: date) -> bool:
    reviewed = site.separation_last_reviewed
    return reviewed is not None and as_at - REVIEW_VALID_FOR <= reviewed <= as_at


def _sentence(causes: list[str]) -> str:
    text = "; ".join(causes)
    return text[:1].upper() + text[1:] + "."


def _principle(key: str, verdict: str, reason: str, evidence: dict) -> dict:
    return {"key": key, "title": PRINCIPLE_TITLES[key], "verdict": verdict, "reason": reason, "evidence": evidence}


# Each principle's judge: (figures, shown, log_verified) -> (verdict, reason, evidence). It judges on the raw
# figures and shows the published ones behind its verdict (`shown` gives a total's published cell).


def _voluntary_participation(figures: PilotFigures, shown, log_verified: bool):
    total = figures.total
    vol = total.voluntariness
    evidence = {
        "not_voluntary": shown("voluntariness", Voluntariness.NOT_VOLUNTARY),
        "mandated_assessment": shown("by_pathway", Pathway.MANDATED_ASSESSMENT),
        "benefit_condition": shown("by_pathway", Pathway.BENEFIT_CONDITION),
        "referred_by_jobcentre_M5": shown("by_source_of_referral", JOBCENTRE_SOURCE),
        "unknown": shown("voluntariness", Voluntariness.UNKNOWN),
        "remained_voluntary": shown("remained_voluntary"),
    }
    causes = []
    if vol[Voluntariness.NOT_VOLUNTARY]:
        causes.append("referrals were not voluntary (a mandated pathway, or told attendance was required or of a sanction)")
    if total.by_source_of_referral.get(JOBCENTRE_SOURCE):
        causes.append("Jobcentre Plus referred people (source M5) instead of their referring themselves")
    if total.referrals_received == 0:
        return INSUFFICIENT, "No referrals in the period.", evidence
    if causes:
        return NOT_MET, _sentence(causes), evidence
    if vol[Voluntariness.VOLUNTARY] + vol[Voluntariness.CONCERN] == 0:
        return INSUFFICIENT, "No referral has both explicit consent and an intake check yet.", evidence
    return (
        MET,
        "Every referral with consent and an intake check was voluntary; none mandated or referred by Jobcentre Plus.",
        evidence,
    )


def _no_information_sharing(figures: PilotFigures, shown, log_verified: bool):
    evidence = {
        "benefits_agency_access_allowed": shown("benefits_agency_access_allowed"),
        "benefits_agency_access_denied": shown("benefits_agency_access_denied"),
        "access_log_verified": log_verified,
    }
    if not figures.sites:
        return INSUFFICIENT, "The pilot has no sites.", evidence
    if figures.total.counts["benefits_agency_access_allowed"] or not log_verified:
        return NOT_MET, "A benefits-agency account reached client data, or the access log failed verification.", evidence
    return MET, "No benefits-agency access to client data was allowed, and the access log verified.", evidence


def _client_led_goals(figures: PilotFigures, shown, log_verified: bool):
    counts = figures.total.counts
    evidence = {
        "employment_goal_raised_by_benefits_agency": shown("employment_goal_raised_by_benefits_agency"),
        "intake_check_recorded": shown("intake_check_recorded"),
    }
    if counts["employment_goal_raised_by_benefits_agency"]:
        return NOT_MET, "A check recorded an employment goal raised by the benefits agency.", evidence
    if counts["intake_check_recorded"] == 0:
        return INSUFFICIENT, "No intake voluntariness checks recorded in the period.", evidence
    return MET, "No check recorded an employment goal raised by the benefits agency.", evidence


def _appropriate_environment(figures: PilotFigures, shown, log_verified: bool):
    as_at = figures.period.end
    unseparated = [s.name for s in figures.sites if not _fully_separated(s)]
    unreviewed = [s.name for s in figures.sites if not _reviewed_recently(s, as_at)]
    evidence = {"sites_not_fully_separated": unseparated, "sites_not_reviewed_within_a_year": unreviewed}
    if not figures.sites:
        return INSUFFICIENT, "The pilot has no sites.", evidence
    if unseparated:
        return NOT_MET, "A site's separation checklist has an item not in place.", evidence
    if unreviewed:
        return INSUFFICIENT, "A site's separation checklist was not reviewed in the year before the period ended.", evidence
    return MET, "Every site is fully separated and was reviewed within the year.", evidence


def _free_to_withdraw(figures: PilotFigures, shown, log_verified: bool):
    counts = figures.total.counts
    evidence = {
        "withdrawals": shown("withdrawals"),
        "withdrawals_citing_pressure": shown("withdrawals_citing_pressure"),
        "felt_not_free_to_stop": shown("felt_not_free_to_stop"),
    }
    causes = []
    if counts["withdrawals_citing_pressure"]:
        causes.append("clients withdrew citing pressure")
    if counts["felt_not_free_to_stop"]:
        causes.append("checks recorded clients not feeling free to stop")
    if causes:
        return NOT_MET, _sentence(causes), evidence
    if counts["explicit_consent"] == 0:
        return INSUFFICIENT, "Nobody consented in the period, so nobody could withdraw.", evidence
    return MET, "No withdrawal cited pressure and every check found the client free to stop.", evidence


def _honest_counting(figures: PilotFigures, shown, log_verified: bool):
    total = figures.total
    received = total.referrals_received
    evidence = {
        "referrals_received": shown("referrals_received"),
        "declined": shown("declined"),
        "counted_without_exclusions": True,
    }
    if received == 0:
        return INSUFFICIENT, "No referrals in the period.", evidence
    if not all(sum(getattr(total, b).values()) == received for b in BREAKDOWNS):
        return NOT_MET, "The breakdowns do not add up to the referrals received.", evidence
    return MET, "Every referral in the period is counted, whatever its status or pathway, including those who declined.", evidence


PRINCIPLE_JUDGES = {
    "voluntary_participation": _voluntary_participation,
    "no_information_sharing": _no_information_sharing,
    "client_led_goals": _client_led_goals,
    "appropriate_environment": _appropriate_environment,
    "free_to_withdraw": _free_to_withdraw,
    "honest_counting": _honest_counting,
}


def _principles(figures: PilotFigures, cells: _Cells, log_verified: bool) -> list[dict]:
    """The six principles, each judged on the raw figures and shown with the published ones behind it."""

    def shown(*path):
        return cells.shown(TOTAL, *path)

    return [_principle(key, *judge(figures, shown, log_verified)) for key, judge in PRINCIPLE_JUDGES.items()]


def publish(figures: PilotFigures, log_verified_by_provider: dict[int, bool]) -> dict:
    """The report as it may leave the server: disclosure control applied to every count, share and median.

    The one function through which figures are published, for every format.
    """
    cells = _Cells(figures)
    log_verified = all(log_verified_by_provider.values())
    sites = []
    for site in figures.sites:
        sites.append(
            {
                "site": {"id": site.pk, "name": site.name, "provider": site.provider.name},
                **_scope(cells, site.pk, figures.by_site[site.pk], log_verified_by_provider.get(site.provider_id, False)),
                "separation": _separation(site),
            }
        )
    series = [
        {
            "period": point.period.label,
            "start": point.period.start.isoformat(),
            "end": point.period.end.isoformat(),
            "referrals_received": cells.shown_in_series(point.period.label, "referrals_received"),
            "remained_voluntary": cells.shown_in_series(point.period.label, "remained_voluntary"),
        }
        for point in figures.series
    ]
    return {
        "pilot": {"id": figures.pilot.pk, "name": figures.pilot.name, "cadence": figures.pilot.cadence},
        "period": _period(figures),
        "disclosure_control": DISCLOSURE_CONTROL,
        "totals": _scope(cells, TOTAL, figures.total, log_verified),
        "sites": sites,
        "principles": _principles(figures, cells, log_verified),
        "series": series,
    }


def _period(figures: PilotFigures) -> dict:
    """The period as reported, with the pilot's dates and what was left out because of them."""
    pilot = figures.pilot
    starts_on, ends_on = getattr(pilot, "starts_on", None), getattr(pilot, "ends_on", None)
    period = figures.period.as_dict()
    if starts_on is None or ends_on is None:
        return period
    period["pilot_dates"] = {"start": starts_on.isoformat(), "end": ends_on.isoformat()}
    period["counted"] = (
        f"Referrals received from {figures.period.start.isoformat()} to {figures.period.end.isoformat()}: the period "
        f"clipped to the pilot's dates. Referrals outside the pilot's dates are not counted."
    )
    return period


def log_verification(provider_ids) -> dict[int, bool]:
    """Whether each provider's access-log chain verifies, from its last verified checkpoint to its head.

    Resuming keeps the report's cost to the events since the last verification instead of the whole log
    (at 1M referrals a full walk was 90% of the report's time); the DPO's verify walks the whole chain.
    """
    return {pid: verify_chain(organisation_ids=[pid], resume=True).verified for pid in sorted(provider_ids)}


def compliance_report(pilot: Pilot, period: Period | str) -> dict:
    """The published compliance report of a pilot for a standard period (a Period or its label, or `pilot`).

    The period is clipped to the pilot's dates first (periods.period_of_pilot): referrals outside them are not
    counted. A label that is not a standard period, or a period outside the pilot, is a ValidationError.
    """
    figures = pilot_figures(pilot, period_of_pilot(pilot, period))
    return publish(figures, log_verification({site.provider_id for site in figures.sites}))


__all__ = ["compliance_report", "publish", "log_verification", "PRINCIPLES", "MET", "NOT_MET", "INSUFFICIENT", "STAR"]
