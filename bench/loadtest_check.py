"""After a load test: hold the database to what the load test saw, answer by answer.

    python -m bench.loadtest_check [--record bench/results/loadtest-requests.jsonl]
                                   [--stats bench/results/loadtest_stats.csv] [--server-log GUNICORN_LOG]
                                   [--allow-unavailable]

Run with the DATABASE_URL of the served instance. It reads the answers that bench/locustfile.py recorded (each
with the request id the server put in X-Request-ID) and checks, in the database the server wrote to:

- every allowed answer has its access events, allowed, on its request id: one per row of a referral list
  (the very rows served), one for a referral read, an intake, a consent, a sign-in;
- every refusal (the work coach's attempts) has its denied event (one per provider's chain concerned) with
  the status it was answered, and nothing allowed;
- every answer is the one its journey expects (any other, a 400, a 429, a 5xx, a lost connection, fails the
  check) and an unexpected answer left no event: nothing half-written;
- no event of the run's time belongs to a request the load test did not see;
- every intake answered 201 is one client and one referral, with its grants to the recorder and their
  team, and each consent answered 201 is one record; no intake that failed left a client; no duplicates;
- the hash chains verify (the verify_access_log command, a full walk).

Prints the figures (with the latency percentiles per kind from locust's CSV, when given) and exits non-zero on
any failure. With --allow-unavailable (a run through a database outage) a 503 with Retry-After is accepted as
the honest answer, and must still have written nothing.
"""

import argparse
import csv
import io
import json
import os
import re
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# Answers that give out client data: the exact events each must have (a count, or "rows": one per row listed).
# A sign-in is logged for accounts whose organisation keeps a chain (a reviewer's professional body does not).
ALLOWED_EVENTS = {"therapist_list": "rows", "detail_read": 1, "intake": 1, "consent": 1, "sign_in": (0, 1)}
# Refusals: the status each must get, each with its denied events and nothing allowed.
REFUSALS = {"work_coach_detail": 404, "work_coach_list": 403, "work_coach_report": 403}
# Answers about no single client (the log itself, suppressed reports, setup reads): never a denied event; if the
# server logs a kind at all, it logs every answer of it.
OTHER_READS = ("dpo_log", "dpo_alerts", "reviewer_report")


def _configure() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()


def read_record(path: Path) -> tuple[dict, list[dict]]:
    header, answers = {}, []
    with path.open(encoding="utf-8") as record:
        for line in record:
            entry = json.loads(line)
            if "kind" in entry:
                answers.append(entry)
            else:
                header.update(entry)
    return header, answers


class Check:
    def __init__(self):
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        if len(self.failures) < 50:
            print(f"FAIL: {message}")
        self.failures.append(message)


def _same_path(logged: str, requested: str) -> bool:
    """The event's path is the request's, less its query string and with whatever the log withheld."""
    from consent.access.log import WITHHELD

    pattern = re.escape(logged.split("?")[0]).replace(re.escape(WITHHELD), ".+")
    return re.fullmatch(pattern, requested.split("?")[0]) is not None


def _events_by_request(ids: list[str]) -> dict[str, list[dict]]:
    from consent.access.models import AccessEvent

    events_by_request = defaultdict(list)
    fields = ("request_id", "outcome", "status", "method", "path", "referral_id", "action")
    for start in range(0, len(ids), 5000):
        for event in AccessEvent.objects.filter(request_id__in=ids[start : start + 5000]).values(*fields):
            events_by_request[event["request_id"]].append(event)
    return events_by_request


def _check_refusal(check: Check, where: str, status: int, allowed: list, denied: list) -> None:
    # One denied event on each chain concerned: a refused list, on the chain of every provider with a site at
    # the work coach's agency.
    if not denied or allowed:
        check.fail(f"{where}: {len(denied)} denied and {len(allowed)} allowed events")
    elif any(event["status"] != status for event in denied):
        check.fail(f"{where}: its denied events say status {sorted({e['status'] for e in denied})}")


def _check_allowed(check: Check, where: str, answer: dict, allowed: list, denied: list) -> None:
    expected = ALLOWED_EVENTS[answer["kind"]]
    if denied:
        check.fail(f"{where}: {len(denied)} denied events on an allowed answer")
    if expected == "rows":
        served = Counter(answer.get("rows", []))
        logged = Counter(str(e["referral_id"]) for e in allowed)
        if served != logged:
            check.fail(f"{where}: {len(answer.get('rows', []))} rows served, {len(allowed)} list events, "
                       f"{sum((served - logged).values())} rows without one")  # fmt: skip
    elif len(allowed) not in (expected if isinstance(expected, tuple) else (expected,)):
        check.fail(f"{where}: {len(allowed)} allowed events, expected {expected}")
    elif answer.get("referral") and str(allowed[0]["referral_id"]) != answer["referral"]:
        check.fail(f"{where}: its event names referral {allowed[0]['referral_id']}")
    if any(not 200 <= (e["status"] or 0) < 300 for e in allowed):
        check.fail(f"{where}: an allowed event records a status that is not 2xx")


def _check_unexpected(check: Check, where: str, answer: dict, events: list, allow_unavailable: bool) -> None:
    """Not the answer this journey expects (a refusal where data was due, a 400, 429, 5xx or no answer): a failure,
    except a 503 with Retry-After in a run through an outage; either way, nothing left behind."""
    status = answer["status"]
    if not (allow_unavailable and status == 503 and answer.get("retry_after")):
        check.fail(f"{where}: not the answer this journey expects")
    if status == 503 and not answer.get("retry_after"):
        check.fail(f"{where}: a 503 without Retry-After")
    if events:
        check.fail(f"{where}: an unexpected answer left {len(events)} events")


def _check_answer(check: Check, answer: dict, events: list, logged_kinds: dict, allow_unavailable: bool) -> tuple[int, int]:
    """Check one answer against its events; (allowed, denied) events counted."""
    from consent.access.models import Outcome

    kind, status, request_id = answer["kind"], answer["status"], answer["request_id"]
    allowed = [e for e in events if e["outcome"] == Outcome.ALLOWED]
    denied = [e for e in events if e["outcome"] == Outcome.DENIED]
    where = f"{kind} by {answer['user']}: {answer['method']} {answer['path']} -> {status} (request {request_id or 'none'})"
    if status and not request_id:
        check.fail(f"{where}: no X-Request-ID in the answer")
    for event in events:
        if event["method"] != answer["method"] or not _same_path(event["path"], answer["path"]):
            check.fail(f"{where}: an event names {event['method']} {event['path']}")
    succeeded = bool(status) and 200 <= status < 300
    if kind in REFUSALS and status == REFUSALS[kind]:
        _check_refusal(check, where, status, allowed, denied)
    elif kind in ALLOWED_EVENTS and succeeded:
        _check_allowed(check, where, answer, allowed, denied)
    elif kind not in REFUSALS and kind not in ALLOWED_EVENTS and succeeded:
        if denied:
            check.fail(f"{where}: {len(denied)} denied events on an allowed answer")
        logged_kinds[kind].add(bool(allowed))
    else:
        _check_unexpected(check, where, answer, events, allow_unavailable)
    return len(allowed), len(denied)


def _check_strangers(check: Check, header: dict, answers: list[dict], known: set) -> int:
    """Nothing logged that the load test did not see happen, in the time it ran; the events in that time counted."""
    from consent.access.models import AccessEvent

    started = datetime.fromtimestamp(header["started"], UTC)
    stopped = datetime.fromtimestamp(header.get("stopped", max(a["at"] for a in answers)), UTC) + timedelta(seconds=5)
    strangers = Counter()
    in_window = AccessEvent.objects.filter(occurred_at__gte=started, occurred_at__lte=stopped)
    for request_id, path in in_window.values_list("request_id", "path").iterator(chunk_size=5000):
        if request_id not in known:
            strangers[path.split("?")[0]] += 1
    if strangers:
        check.fail(f"{sum(strangers.values())} events in the run's time belong to no request it made: {strangers.most_common(5)}")
    return in_window.count()


def check_events(check: Check, header: dict, answers: list[dict], *, allow_unavailable: bool) -> dict:
    """Every allowed answer has its events, every refusal its denied event, and nothing else was logged."""
    ids = [a["request_id"] for a in answers if a["request_id"]]
    events_by_request = _events_by_request(ids)
    if len(set(ids)) != len(ids):
        check.fail(f"{len(ids) - len(set(ids))} request ids were given to more than one answer")
    outcomes: Counter = Counter()
    logged_kinds: dict[str, set[bool]] = defaultdict(set)
    for answer in answers:
        events = events_by_request.get(answer["request_id"], []) if answer["request_id"] else []
        allowed, denied = _check_answer(check, answer, events, logged_kinds, allow_unavailable)
        outcomes["allowed"] += allowed
        outcomes["denied"] += denied
    for kind, logged in logged_kinds.items():
        if logged == {True, False}:
            check.fail(f"{kind}: some answers have access events and others none")
    in_window = _check_strangers(check, header, answers, set(ids))
    return {"allowed_events": outcomes["allowed"], "denied_events": outcomes["denied"],
            "events_in_window": in_window, "logged_other_reads": {k: sorted(v) for k, v in logged_kinds.items()}}  # fmt: skip


def check_intakes(check: Check, header: dict, answers: list[dict]) -> dict:
    from consent.access.firewall import CHANGE, VIEW, referrals_visible_to
    from consent.access.models import ReferralGroupObjectPermission, ReferralUserObjectPermission
    from consent.models import Client, ConsentRecord, Referral

    prefix = f"LOAD-{header['run']}-"
    intakes = [a for a in answers if a["kind"] == "intake"]
    made = {a["local_reference"]: a for a in intakes if a["status"] == 201}
    clients = Counter(Client.objects.filter(local_reference__startswith=prefix).values_list("local_reference", flat=True))
    referrals = {str(r.pk): r for r in Referral.objects.filter(client__local_reference__startswith=prefix)
                 .select_related("client", "recorded_by", "team__group")}  # fmt: skip
    by_reference = Counter(r.client.local_reference for r in referrals.values())
    for reference, count in clients.items():
        if count > 1:
            check.fail(f"intake {reference}: {count} clients")
        if reference not in made:
            check.fail(f"intake {reference}: a client was left by an intake that was not answered 201")
    for reference, count in by_reference.items():
        if count != 1:
            check.fail(f"intake {reference}: {count} referrals")
    visible: dict = {}
    for reference, answer in made.items():
        referral = referrals.get(answer.get("referral", ""))
        if referral is None or referral.client.local_reference != reference:
            check.fail(f"intake {reference}: answered 201 with referral {answer.get('referral')}, which is not in the database")
            continue
        user_perms = set(ReferralUserObjectPermission.objects.filter(content_object=referral, user=referral.recorded_by)
                         .values_list("permission__codename", flat=True))  # fmt: skip
        group_perms = set(ReferralGroupObjectPermission.objects.filter(content_object=referral, group=referral.team.group)
                          .values_list("permission__codename", flat=True)) if referral.team_id else {VIEW, CHANGE}  # fmt: skip
        if user_perms != {VIEW, CHANGE} or group_perms != {VIEW, CHANGE}:
            check.fail(f"intake {reference}: grants {sorted(user_perms)} to the recorder, {sorted(group_perms)} to the team")
        visible.setdefault(referral.recorded_by, set()).add(referral.pk)
    for user, pks in visible.items():
        seen = set(referrals_visible_to(user).filter(pk__in=pks).values_list("pk", flat=True))
        if seen != pks:
            check.fail(f"{user.username} cannot see {len(pks - seen)} of the referrals they recorded")

    consents = [a for a in answers if a["kind"] == "consent"]
    recorded = {record: a["referral"] for a in consents if a["status"] == 201 for record in a["records"]}
    in_database = dict(ConsentRecord.objects.filter(referral_id__in=list(referrals)).values_list("pk", "referral_id"))
    for record, referral in recorded.items():
        if str(in_database.get(record)) != referral:
            check.fail(f"consent {record} answered 201 for referral {referral} is not in the database for it")
    if len(in_database) != len(recorded):
        check.fail(f"{len(in_database)} consent records on this run's referrals, {len(recorded)} answered 201")
    return {"intakes_answered_201": len(made), "intakes_failed": len(intakes) - len(made), "clients": sum(clients.values()),
            "referrals": len(referrals), "consents_answered_201": len(recorded), "consent_records": len(in_database)}  # fmt: skip


def check_chain(check: Check) -> dict:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("verify_access_log", stdout=out)
        verified = True
    except CommandError as error:
        verified = False
        check.fail(f"verify_access_log: {error}")
    print(out.getvalue().rstrip())
    return {"verified": verified, "verify_access_log": out.getvalue().strip().splitlines()}


def server_times(server_log: Path | None) -> dict[str, int]:
    """Milliseconds each request spent in a gunicorn worker, by request id, from its access log
    (config/gunicorn.conf.py writes `...ms request_id=...`): the time served, without the wait for a free worker."""
    times: dict[str, int] = {}
    if server_log and server_log.exists():
        with server_log.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                found = _SERVED.search(line)
                if found:
                    times[found["request_id"]] = int(found["ms"])
    return times


_SERVED = re.compile(r" (?P<ms>\d+)ms request_id=(?P<request_id>[A-Za-z0-9._-]+)")


def _percentile(values: list[int], p: int):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_table(stats_path: Path | None, server_log: Path | None, answers: list[dict], header: dict) -> tuple[list[dict], str]:
    """Per kind: answers, statuses, locust's percentiles (ms, as the client saw them) when its CSV is there, and
    the time served in the worker when the server's access log is given."""
    rows: dict[str, dict] = {}
    if stats_path and stats_path.exists():
        with stats_path.open(encoding="utf-8") as stats:
            for row in csv.DictReader(stats):
                rows[row["Name"]] = row
    served = server_times(server_log)
    statuses, served_ms = defaultdict(Counter), defaultdict(list)
    for answer in answers:
        statuses[answer["kind"]][answer["status"]] += 1
        if answer["request_id"] in served:
            served_ms[answer["kind"]].append(served[answer["request_id"]])
    elapsed = header.get("stopped", max(a["at"] for a in answers)) - header["started"]
    table = []
    lines = ["| kind | requests | req/s | statuses | p50 ms | p95 ms | p99 ms | max ms | served p50 / p95 ms |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip

    def line(name, count, status_text, stat, in_worker):
        worst = stat.get("Max Response Time")
        served_text = f"{_percentile(in_worker, 50)} / {_percentile(in_worker, 95)}" if in_worker else "-"
        return (f"| {name} | {count} | {count / elapsed:.1f} | {status_text} | {stat.get('50%')} | {stat.get('95%')} "
                f"| {stat.get('99%')} | {worst and round(float(worst))} | {served_text} |")  # fmt: skip

    for kind in sorted(statuses):
        stat = rows.get(kind, {})
        entry = {"kind": kind, "requests": sum(statuses[kind].values()), "statuses": dict(sorted(statuses[kind].items())),
                 "p50": stat.get("50%"), "p95": stat.get("95%"), "p99": stat.get("99%"), "max": stat.get("Max Response Time"),
                 "served_p50": _percentile(served_ms[kind], 50), "served_p95": _percentile(served_ms[kind], 95)}  # fmt: skip
        table.append(entry)
        status_text = ", ".join(f"{s}: {n}" for s, n in entry["statuses"].items())
        lines.append(line(kind, entry["requests"], status_text, stat, served_ms[kind]))
    everything = [ms for values in served_ms.values() for ms in values]
    lines.append(line("**all**", len(answers), "", rows.get("Aggregated", {}), everything))
    return table, "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", type=Path, default=RESULTS / "loadtest-requests.jsonl")
    parser.add_argument("--stats", type=Path, default=RESULTS / "loadtest_stats.csv", help="locust's --csv stats file")
    parser.add_argument("--summary", type=Path, default=RESULTS / "loadtest-summary.json")
    parser.add_argument("--server-log", type=Path, help="gunicorn's access log of the run, for the time served per kind")
    parser.add_argument("--allow-unavailable", action="store_true", help="accept 503s with Retry-After (an outage run)")
    args = parser.parse_args(argv)
    _configure()
    from django.db import connection

    header, answers = read_record(args.record)
    if not answers:
        print(f"FAIL: {args.record} records no answers: did the load test run?")
        return 1
    check = Check()
    events = check_events(check, header, answers, allow_unavailable=args.allow_unavailable)
    intakes = check_intakes(check, header, answers)
    chain = check_chain(check)
    table, text = latency_table(args.stats, args.server_log, answers, header)
    elapsed = header.get("stopped", max(a["at"] for a in answers)) - header["started"]
    print(text)
    print(f"\nrun {header['run']} against {header.get('host')} on {connection.vendor}: {len(answers)} answers in {elapsed:.0f} s "
          f"({len(answers) / elapsed:.1f}/s)")  # fmt: skip
    print(f"events: {events['allowed_events']} allowed, {events['denied_events']} denied "
          f"({events['events_in_window']} written in the run's time)")  # fmt: skip
    print(f"intakes: {intakes['intakes_answered_201']} answered 201 -> {intakes['clients']} clients, {intakes['referrals']} "
          f"referrals; {intakes['intakes_failed']} not 201; consents: {intakes['consents_answered_201']} answered 201 -> "
          f"{intakes['consent_records']} records")  # fmt: skip
    # The machine matters to the timings: the figures in bench/README.md were taken on a shared one.
    machine = {"checked_at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
               "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    summary = {"run": header["run"], "host": header.get("host"), "database": connection.vendor, "machine": machine,
               "answers": len(answers),
               "seconds": round(elapsed, 1), "per_second": round(len(answers) / elapsed, 1), "kinds": table,
               "events": events, "intakes": intakes, "chain": chain, "failures": check.failures}  # fmt: skip
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    if check.failures:
        print(f"\nCHECK FAILED: {len(check.failures)} problems (first ones above); summary in {args.summary}")
        return 1
    print(f"\ncheck passed: every answer matches the database; summary in {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
