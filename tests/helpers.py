"""Helpers that more than one test module uses; the world, the standing users and the factories are in
tests/conftest.py and tests/factories.py, the endpoint catalogue in tests/endpoints.py."""

from datetime import date
from html.parser import HTMLParser

from django.db import connection

from colocation.models import Pilot
from consent.models import Client, ConsentRecord, Referral, VoluntarinessCheck
from consent.reports.cells import rebuild_cells
from consent.voluntariness_flags import rebuild_voluntariness_flags
from tests.factories import ACKNOWLEDGED, at

# ---- the access log's storage, down and mended (statements per database vendor) ------------------------------

ACCESS_LOG_DOWN = {
    "sqlite": [
        "CREATE TRIGGER access_log_down BEFORE INSERT ON access_accessevent "
        "BEGIN SELECT RAISE(ABORT, 'access log storage unavailable'); END;"
    ],
    "postgresql": [
        "CREATE FUNCTION access_log_down() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'access log storage unavailable'; END; $$;",
        "CREATE TRIGGER access_log_down BEFORE INSERT ON access_accessevent FOR EACH ROW EXECUTE FUNCTION access_log_down();",
    ],
}
ACCESS_LOG_MENDED = {
    "sqlite": ["DROP TRIGGER access_log_down;"],
    "postgresql": ["DROP TRIGGER access_log_down ON access_accessevent;", "DROP FUNCTION access_log_down();"],
}


def run_statements(statements):
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


# ---- the admin's forms -------------------------------------------------------------------------------------------


class AdminForm(HTMLParser):
    """The fields of the admin's change form as a browser would submit them unchanged."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value", "on"))
            else:
                self.data.setdefault(name, []).append(a.get("value", ""))
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self.data.setdefault(name, []).append("")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def admin_form(client, url) -> dict:
    page = client.get(url)
    assert page.status_code == 200
    parser = AdminForm()
    parser.feed(page.content.decode())
    return {name: values for name, values in parser.data.items() if name != "csrfmiddlewaretoken"}


# ---- request bodies and bulk worlds ------------------------------------------------------------------------------


def intake_body(world, **changes) -> dict:
    data = {
        "client": {"local_reference": "KTT-000999", "nhs_number": "9434765919", "year_of_birth": 1979},
        "site": world.site.pk,
        "referred_on": "2026-09-14",
        "source_of_referral": "B1",
        "how_heard": "work_coach_suggested",
        "pathway": "signposted_by_work_coach",
    }
    for key, value in changes.items():
        if key.startswith("client__"):
            data["client"][key.removeprefix("client__")] = value
        else:
            data[key] = value
    return data


def recount_report_rows() -> None:
    """After rows written around the services: the flags rows and every pilot's lattice cells counted again."""
    rebuild_voluntariness_flags()
    for pilot in Pilot.objects.all():
        rebuild_cells(pilot)


def fix_record_keys(key: int) -> None:
    """Every referral's record key set to `key` (so each cell key is a known multiple of its count), and what
    the report keeps of them counted again."""
    Referral.objects.update(record_key=key)
    recount_report_rows()


def bulk_referrals(world, n: int) -> None:
    """n referrals with consent and an intake check, written in bulk (no services: this is about reading)."""
    clients = Client.objects.bulk_create(
        [Client(provider=world.kent, local_reference=f"BULK-{n}-{i}") for i in range(n)], batch_size=500
    )
    pathways = ("self_referral", "signposted_by_work_coach", "mandated_assessment")
    referrals = Referral.objects.bulk_create(
        [
            Referral(client=c, provider=world.kent, site=world.site, referred_on=date(2026, 7 + i % 3, 1 + i % 28),
                     source_of_referral=("B1", "M5", "A1")[i % 3], how_heard="leaflet_or_poster",
                     pathway=pathways[i % 3], status="active", recorded_by=world.therapist)
            for i, c in enumerate(clients)
        ],
        batch_size=500,
    )  # fmt: skip
    ConsentRecord.objects.bulk_create(
        [ConsentRecord(referral=r, template=world.template, given_at=at(r.referred_on), method="verbal",
                       scopes=["treatment"], recorded_by=world.therapist, **ACKNOWLEDGED) for r in referrals],
        batch_size=500,
    )  # fmt: skip
    VoluntarinessCheck.objects.bulk_create(
        [VoluntarinessCheck(referral=r, checked_at=at(r.referred_on, 11), stage="intake", told_attendance_required=False,
                            sanction_mentioned=False, feels_free_to_stop=True, goals_set_by_client=True,
                            employment_goal_raised_by="nobody", recorded_by=world.therapist) for r in referrals],
        batch_size=500,
    )  # fmt: skip
    recount_report_rows()
