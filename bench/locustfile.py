"""The load test: the mixed journeys of a working day, against a served instance (`make loadtest`).

Clinicians (therapists and a clinical lead of two providers) list their referrals, open them, and record intakes
with consent; a data-protection officer reads the access log and its alerts; a professional-body reviewer asks
for compliance reports for standard periods; a work coach tries, and must fail, to reach client data.

Every answer is written to LOADTEST_RECORD (JSON lines) with the request id the server gave it (the
X-Request-ID response header), so `python -m bench.loadtest_check` can hold the database to what happened:
each allowed answer has its access events, each refusal its denied event, each intake is whole and single.

Accounts are seed_demo's (LOADTEST_PASSWORD, default the demo password). Requests carry
X-Forwarded-Proto: https, as the TLS-terminating proxy in front of production does.
"""

import json
import os
import random
import threading
import time
import uuid
from datetime import date, timedelta
from itertools import cycle

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

PASSWORD = os.environ.get("LOADTEST_PASSWORD", "demo-pass-2026")
RECORD = os.environ.get("LOADTEST_RECORD", "bench/results/loadtest-requests.jsonl")
# Distinguishes this run's intakes (their local references) from every other run's on the same database.
RUN = os.environ.get("LOADTEST_RUN") or time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
ACKNOWLEDGEMENTS = dict.fromkeys(("attendance_is_optional", "no_effect_on_benefits", "service_separate_from_jobcentre",
                                  "nothing_shared_with_jobcentre", "free_to_withdraw"), True)  # fmt: skip

# Referral ids the clinicians have seen: what a work coach who overheard one would try.
seen_referrals: list[str] = []
_record_lock = threading.Lock()
_record_file = None
_intake_number = 0


@events.test_start.add_listener
def _open_record(environment, **kwargs):
    global _record_file
    os.makedirs(os.path.dirname(RECORD) or ".", exist_ok=True)
    _record_file = open(RECORD, "w", encoding="utf-8")  # open for the whole run, closed when it stops
    _write({"run": RUN, "host": environment.host, "started": time.time()})


@events.test_stop.add_listener
def _close_record(environment, **kwargs):
    if _record_file is not None:
        _write({"run": RUN, "stopped": time.time()})
        _record_file.close()


def standard_periods(pilot: dict) -> list[str]:
    """The standard periods (docs/disclosure-control.md: a year, a quarter, a month or the pilot, never a from/to window) the pilot runs in."""
    first, last = date.fromisoformat(pilot["starts_on"]), date.fromisoformat(pilot["ends_on"] or pilot["starts_on"])
    periods, month = set(), first.replace(day=1)
    while month <= last:
        periods |= {f"{month.year}", f"{month.year}-Q{(month.month - 1) // 3 + 1}", f"{month:%Y-%m}"}
        month = (month + timedelta(days=32)).replace(day=1)
    return sorted(periods)


def _write(entry: dict):
    with _record_lock:
        _record_file.write(json.dumps(entry) + "\n")


class Journey(FastHttpUser):
    """Signs in once with its account's token, then calls the API, recording every answer."""

    abstract = True
    wait_time = between(0.05, 0.25)
    accounts: cycle

    def on_start(self):
        self.username = next(self.accounts)
        answer = self.call("sign_in", "POST", "/api/v1/auth/token/", expect={200},
                           json={"username": self.username, "password": PASSWORD})  # fmt: skip
        token = (answer or {}).get("token", "")
        self.headers = {"X-Forwarded-Proto": "https", "Authorization": f"Token {token}"}

    def call(self, kind: str, method: str, path: str, *, expect: set[int], json=None, recorded_from=None, **recorded):
        """One request, a success if its status is one of `expect`, recorded with the server's request id.

        `recorded_from(body)` adds what the check needs from a successful answer (the rows listed, the id made).
        Returns the parsed body of an expected answer, else None.
        """
        headers = getattr(self, "headers", {"X-Forwarded-Proto": "https"})
        with self.client.request(method, path, name=kind, json=json, headers=headers, catch_response=True,
                                 allow_redirects=False) as response:  # fmt: skip
            status = response.status_code or 0
            body = self.body(response) if status in expect else None
            if status in expect:
                response.success()
            else:
                response.failure(f"{status} (expected {sorted(expect)}): {(response.text or '')[:200]}")
            answer_headers = response.headers or {}
            if body is not None and recorded_from is not None:
                recorded.update(recorded_from(body))
            _write({"kind": kind, "user": self.username, "method": method, "path": path, "status": status,
                    "request_id": answer_headers.get("X-Request-ID", ""), "retry_after": answer_headers.get("Retry-After"),
                    "at": time.time(), **recorded})  # fmt: skip
            return body

    def body(self, response):
        try:
            return response.json()
        except (ValueError, TypeError):
            return {}

    def get(self, path: str, kind: str):
        """A read the journey needs to set itself up (its organisation, sites, templates, pilots)."""
        return self.call(kind, "GET", path, expect={200}) or {}


class Clinician(Journey):
    """Therapists and a clinical lead of Kent, and a Medway therapist: lists, detail reads, intakes with consent."""

    weight = 12
    accounts = cycle(["therapist", "therapist2", "lead", "other-therapist"])

    def on_start(self):
        super().on_start()
        self.referrals: list[str] = []
        self.pages = 1  # of the list, as far as the last page 1 said (up to 3)
        organisation = (self.get("/api/v1/me/", "setup_me").get("organisation") or {}).get("id")
        sites = self.get("/api/v1/sites/", "setup_sites").get("results", [])
        self.sites = [site["id"] for site in sites if site["provider"]["id"] == organisation]
        templates = self.get("/api/v1/consent-templates/", "setup_templates")
        templates = templates.get("results", []) if isinstance(templates, dict) else templates
        self.template = next((t["id"] for t in templates if t["language"] == "en"), None)

    @task(4)
    def list_referrals(self):
        page = random.randint(1, self.pages)
        # The rows served are recorded: the log must hold one list event for each.
        answer = self.call("therapist_list", "GET", f"/api/v1/referrals/?page={page}", expect={200},
                           recorded_from=lambda body: {"rows": [row["id"] for row in body.get("results", [])]})  # fmt: skip
        rows = [row["id"] for row in (answer or {}).get("results", [])]
        if answer is not None and page == 1 and rows:
            # Page 1 is full whenever there is a page 2: its length is the page size.
            self.pages = min(3, -(-answer.get("count", 0) // len(rows)))
        self.referrals = rows or self.referrals
        if rows and len(seen_referrals) < 500:
            seen_referrals.append(random.choice(rows))

    @task(4)
    def read_referral(self):
        if not self.referrals:
            return self.list_referrals()
        referral = random.choice(self.referrals)
        self.call("detail_read", "GET", f"/api/v1/referrals/{referral}/", expect={200}, referral=referral)

    @task(1)
    def intake_with_consent(self):
        global _intake_number
        if not self.sites or self.template is None:
            return
        _intake_number += 1
        reference = f"LOAD-{RUN}-{_intake_number}"
        referred_on = (date.today() - timedelta(days=random.randint(1, 20))).isoformat()
        answer = self.call(
            "intake", "POST", "/api/v1/referrals/", expect={201}, local_reference=reference,
            recorded_from=lambda body: {"referral": body["id"]},
            json={"client": {"local_reference": reference, "year_of_birth": random.randint(1960, 2004)},
                  "site": random.choice(self.sites), "referred_on": referred_on,
                  "source_of_referral": random.choice(["B1", "B1", "B1", "M5"]),
                  "how_heard": random.choice(["leaflet_or_poster", "gp", "work_coach_suggested", "found_themselves"]),
                  "pathway": random.choice(["self_referral", "self_referral", "signposted_by_work_coach"])},
        )  # fmt: skip
        if answer is None:
            return
        referral = answer["id"]
        self.referrals.append(referral)
        self.call(
            "consent", "POST", f"/api/v1/referrals/{referral}/consents/", expect={201}, referral=referral,
            # The answer is the referral with its consent records: a new referral has this one only.
            recorded_from=lambda body: {"records": [record["id"] for record in body.get("consents", [])]},
            json={"template": self.template, "method": random.choice(["verbal", "written", "digital"]),
                  "given_at": f"{referred_on}T10:00:00Z", "scopes": ["treatment", "data_set_submission"],
                  "acknowledgements": ACKNOWLEDGEMENTS},
        )  # fmt: skip


class DataProtectionOfficer(Journey):
    weight = 1
    accounts = cycle(["dpo"])

    @task(3)
    def read_the_log(self):
        self.call("dpo_log", "GET", f"/api/v1/access-events/?page={random.choice([1, 1, 2, 3])}", expect={200})

    @task(1)
    def read_the_alerts(self):
        self.call("dpo_alerts", "GET", "/api/v1/access-events/alerts/", expect={200})


class Reviewer(Journey):
    weight = 1
    accounts = cycle(["reviewer"])

    def on_start(self):
        super().on_start()
        self.pilots = {p["id"]: standard_periods(p) for p in self.get("/api/v1/pilots/", "setup_pilots").get("results", [])}

    @task
    def compliance_report(self):
        if self.pilots:
            pilot = random.choice(list(self.pilots))
            period = random.choice(self.pilots[pilot])
            self.call("reviewer_report", "GET", f"/api/v1/pilots/{pilot}/compliance-report/?period={period}", expect={200})


class WorkCoach(Journey):
    """A benefits-agency account trying every door: each attempt refused, and each refusal logged as denied."""

    weight = 1
    accounts = cycle(["workcoach"])

    def on_start(self):
        super().on_start()
        # Sites and pilots are what a work coach may read; the pilots' reports are not.
        self.pilots = {p["id"]: standard_periods(p) for p in self.get("/api/v1/pilots/", "setup_pilots").get("results", [])}

    @task(2)
    def open_a_referral(self):
        referral = random.choice(seen_referrals) if seen_referrals else str(uuid.uuid4())
        self.call("work_coach_detail", "GET", f"/api/v1/referrals/{referral}/", expect={404}, referral=referral)

    @task(1)
    def list_referrals(self):
        self.call("work_coach_list", "GET", "/api/v1/referrals/", expect={403})

    @task(1)
    def read_a_report(self):
        if self.pilots:
            pilot = random.choice(list(self.pilots))
            period = random.choice(self.pilots[pilot])
            self.call("work_coach_report", "GET", f"/api/v1/pilots/{pilot}/compliance-report/?period={period}", expect={403})
