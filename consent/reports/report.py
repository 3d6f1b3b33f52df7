"""The pilot compliance report: raw figures in, the published (suppressed) report out.

`publish` is the one place disclosure control is applied. Every rendering (JSON, CSV, HTML), every
snapshot and the management command start from its output; the raw figures never leave this module.
"""

from collections.abc import Hashable
from datetime import date

from dateutil.relativedelta import relativedelta

from colocation.models import Pilot, Site
from consent.access.log import verify_chain
from consent.models import Pathway
from consent.reports.disclosure import (
    DISCLOSURE_CONTROL,
    STAR,
    counts_published_as,
    publish_count,
    share_of_published,
    suppress_median,
    withheld_cells,
)
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
ALIASES = {("remained_voluntary",): ("voluntariness", Voluntariness.VOLUNTARY)}


def _cells_of(figures: Figures) -> dict[tuple, int]:
    cells: dict[tuple, int] = {("referrals_received",): figures.referrals_received}
    for breakdown in BREAKDOWNS:
        for key, n in getattr(figures, breakdown).items():
            cells[(breakdown, key)] = n
    for name in PUBLISHED_COUNTS:
        cells[(name,)] = figures.counts[name]
    return cells


class _Cells:
    """Every count of the report as one table of cells and the (total, parts) groups that tie them together.

    Each cell has its count and its cell key (the sum of the record keys of the referrals it counts); the
    published figure is disclosure.publish_count of the two, or "*" when secondary suppression withholds it.
    The series' cells (and the period's own totals when the period is one step of the series) appear in every
    report whose series reaches them, so they are never withheld by one report's secondary suppression: they
    publish the same figure wherever they appear.
    """

    def __init__(self, figures: PilotFigures):
        self.values: dict[Hashable, int] = {}
        self.keys: dict[Hashable, int] = {}
        self.aliases: dict[Hashable, Hashable] = {}
        self.groups: list[tuple[Hashable, list[Hashable]]] = []
        self.fixed: set[Hashable] = set()
        scopes = {TOTAL: figures.total, **figures.by_site}
        for scope, scope_figures in scopes.items():
            for path, n in _cells_of(scope_figures).items():
                self.values[(scope, *path)] = n
                self.keys[(scope, *path)] = scope_figures.keys.get(path, 0)
            for alias, target in ALIASES.items():
                self.aliases[(scope, *alias)] = (scope, *target)
            # Each breakdown is a partition of the referrals received at that scope.
            for breakdown in BREAKDOWNS:
                parts = [(scope, breakdown, key) for key in getattr(scope_figures, breakdown)]
                self.groups.append(((scope, "referrals_received"), parts))
        # Every count of the pilot is the sum of the same count over its sites (access attempts at least
        # the sum: attempts aimed at no referral are only in the total, which can only withhold more).
        site_ids = list(figures.by_site)
        if site_ids:
            for path in _cells_of(figures.total):
                self.groups.append(((TOTAL, *path), [(site, *path) for site in site_ids]))
        self._add_series(figures)
        self.withheld = withheld_cells(
            self.values, self.groups, rank=self._rank, exempt=frozenset(self.fixed), exposed=self._exposed
        )

    def _add_series(self, figures: PilotFigures) -> None:
        period = figures.period
        for point in figures.series:
            label = point.period.label
            if point.period.start == period.start and point.period.end == period.end:
                # The period is one step of the series: the same figures, so the same cells.
                self.aliases[("series", label, "referrals_received")] = (TOTAL, "referrals_received")
                self.aliases[("series", label, "remained_voluntary")] = (TOTAL, "voluntariness", Voluntariness.VOLUNTARY)
                self.fixed.update({(TOTAL, "referrals_received"), (TOTAL, "voluntariness", Voluntariness.VOLUNTARY)})
                continue
            self.values[("series", label, "referrals_received")] = point.referrals_received
            self.keys[("series", label, "referrals_received")] = point.referrals_received_key
            self.values[("series", label, "remained_voluntary")] = point.remained_voluntary
            self.keys[("series", label, "remained_voluntary")] = point.remained_voluntary_key
            self.fixed.update({("series", label, "referrals_received"), ("series", label, "remained_voluntary")})

    def _range(self, key: Hashable) -> range:
        """What a reader knows of a shown cell from its figure alone: the counts the table could have published so."""
        return counts_published_as(publish_count(self.values[key], self.keys[key]))

    def _exposed(self, total: Hashable, parts: list[Hashable], withheld: set[Hashable]) -> bool:
        """Whether a group's shown figures pin down the sum of its withheld cells too closely.

        A reader who knows the table bounds the withheld cells' sum by the shown cells' ranges. If the true sum
        sits exactly at the edge of that bound (a shown total at the top of its range, shown parts at the bottom
        of theirs), then once the reader knows the other withheld cells, one of them is exact. The server knows
        the true counts, so it asks for at least one count of room on each side that can be bounded.
        """
        starred = [p for p in parts if p in withheld]
        shown = [p for p in parts if p not in withheld]
        starred_sum = sum(self.values[p] for p in starred)
        low_shown = sum(self._range(p).start for p in shown)
        high_shown = sum(self._range(p).stop - 1 for p in shown)
        if total in withheld:
            # Total = shown parts + withheld parts: its lower bound rests on the shown parts' lower bounds.
            room_below = self.values[total] - low_shown - starred_sum
            room_above = (high_shown + starred_sum - self.values[total]) if not starred else 1
            return room_below < 1 or room_above < 1
        if not starred:
            return False
        shown_total = self._range(total)
        room_above = (shown_total.stop - 1) - low_shown - starred_sum
        room_below = starred_sum - (shown_total.start - high_shown)
        return room_above < 1 or (len(starred) == 1 and room_below < 1)

    def _rank(self, key: Hashable):
        """Secondary suppression withholds the cell that publishes the smallest figure, then the smallest cell key."""
        return (publish_count(self.values[key], self.keys[key]), self.keys[key])

    def raw(self, *key) -> int:
        return self.values[self.aliases.get(key, key)]

    def shown(self, *key) -> int | str:
        key = self.aliases.get(key, key)
        if key in self.withheld:
            return STAR
        return publish_count(self.values[key], self.keys[key])


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
            "referrals_received": cells.shown("series", point.period.label, "referrals_received"),
            "remained_voluntary": cells.shown("series", point.period.label, "remained_voluntary"),
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
