"""Build (or reuse) the worlds of N and N/10 referrals, measure every operation, print the table, write the JSON.

    python -m bench.run [--referrals N] [--repeat K] [--rebuild] [--profile OPERATION]

SQLite by default (worlds in bench/results/bench-<N>.sqlite3); with DATABASE_URL set to PostgreSQL, each world is a
schema bench_<N> of that database (created if missing). A stored world of the right size and shape is reused.
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _configure() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()


def _ensure_database() -> None:
    """Create the DATABASE_URL database if it does not exist yet (PostgreSQL only)."""
    import psycopg
    from django.db import connections

    settings = connections["default"].settings_dict
    params = {"host": settings["HOST"] or None, "port": settings["PORT"] or None, "user": settings["USER"] or None,
              "password": settings["PASSWORD"] or None}  # fmt: skip
    try:
        psycopg.connect(dbname=settings["NAME"], **params).close()
    except psycopg.OperationalError:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
            admin.execute(f'CREATE DATABASE "{settings["NAME"]}"')


def use_world(referrals: int, *, rebuild: bool) -> dict:
    """Point the default connection at the world of this size, building it if it is missing or stale."""
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    from bench import world

    connection.close()
    ContentType.objects.clear_cache()
    if connection.vendor == "sqlite":
        path = RESULTS / f"bench-{referrals}.sqlite3"
        connection.settings_dict["NAME"] = str(path)
        where = str(path.relative_to(RESULTS.parent.parent))
    else:
        schema = f"bench_{referrals}"
        connection.settings_dict.setdefault("OPTIONS", {})["options"] = f"-c search_path={schema}"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        where = f"{connection.settings_dict['NAME']}, schema {schema}"
    marker = world.stored_world()
    if marker and marker["version"] == world.WORLD_VERSION and marker["referrals"] == referrals and not rebuild:
        print(f"Reusing the world of {referrals:,} referrals in {where} (built in {marker['built_seconds']:.0f}s).", flush=True)
        # Migrations added since the world was built (an index, a table) apply to it as they would in production.
        call_command("migrate", verbosity=0, interactive=False)
        world.keep_report_cells()
        return {"built_seconds": marker["built_seconds"], "reused": True, "where": where}
    print(f"Building a world of {referrals:,} referrals in {where}...", flush=True)
    if connection.vendor == "sqlite":
        connection.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cursor.execute(f"CREATE SCHEMA {schema}")
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    print(f"  [world] migrated in {time.perf_counter() - started:.1f}s", flush=True)
    seconds = world.build(referrals) + time.perf_counter() - started
    return {"built_seconds": seconds, "reused": False, "where": where}


# The index a plain "my referrals, newest first" query would be given: the baseline of the selector gets it, so
# the firewall is compared with a fair plain query, not with one left to sort a therapist's rows by hand.
BASELINE_INDEXES = {
    "bench_referral_recorder_list": "consent_referral (recorded_by_id, referred_on DESC, created_at DESC, id)",
}


def _baseline_indexes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for name, columns in BASELINE_INDEXES.items():
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")
        cursor.execute("ANALYZE consent_referral")


def measure(
    *, repeat: int, slow_repeat: int = 3, timing: bool, profile: str | None = None, only: str | None = None
) -> dict[str, dict]:
    """Every operation in the current world (or only the one named): queries and peak memory, with `timing` the medians."""
    from bench import operations

    subject = operations.subject()
    # As the nightly verify_access_log leaves them in production: checkpoints the report resumes from. The
    # first time over a world this walks every chain; afterwards only what was written since.
    from consent.access.log import verify_chain

    if not verify_chain(resume=True).verified:
        raise RuntimeError("The world's access log does not verify.")
    _baseline_indexes()
    results = {}
    for op in operations.operations(subject):
        if only is not None and op.name != only:
            continue
        if op.setup:
            op.setup()
        try:
            results[op.name] = _measured(op, timing=timing, repeat=slow_repeat if op.slow else repeat, profile=profile)
        except operations.NotAvailable as missing:
            results[op.name] = {"op": op, "available": False, "why": str(missing)}
            print(f"  {op.name}: not available ({missing})", flush=True)
            continue
        finally:
            # Even when a run fails: the upkeep a write's baseline skipped is made, so the stored world stays exact.
            if op.teardown:
                op.teardown()
        print(f"  {op.name}: measured", flush=True)
    return results


def _measured(op, *, timing: bool, repeat: int, profile: str | None) -> dict:
    """One operation's queries and peak memory (one untimed run), and with `timing` its medians over `repeat` runs."""
    from bench import operations

    outcome, queries, peak_mb = operations.instrumented(op.run)
    entry = {"op": op, "available": True, "queries": queries, "peak_mb": peak_mb}
    if op.baseline:
        entry["baseline_queries"] = operations.queries_of(op.baseline)
    if op.name == "verify_chain":
        if not outcome.verified:
            raise RuntimeError(f"The world's access log does not verify: {outcome.first_mismatch}")
        entry["events"] = outcome.events_checked
        # Worker processes that walked stretches of the chain report their own traced peak. Flat means no
        # process holds more for a longer chain: the peak is the largest process's (this one's, or a worker's);
        # the workers are at most one per CPU, so all of them together are bounded too (kept beside it).
        workers = outcome.workers_peak_bytes or ()
        entry["workers"] = len(workers)
        entry["all_processes_peak_mb"] = entry["peak_mb"] + sum(workers) / 2**20
        entry["peak_mb"] = max([entry["peak_mb"], *(peak / 2**20 for peak in workers)])
    if timing:
        entry.update(operations.medians(op, repeat, warmup=0 if op.slow else 2))
        entry["repeats"] = repeat
    if profile == op.name:
        _profile(op)
    return entry


def _profile(op) -> None:
    from django.db import connection
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(5 if not op.slow else 1):
        op.run()
    profiler.stop()
    path = RESULTS / f"profile-{op.name}-{connection.vendor}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"  profile of {op.name} written to {path}", flush=True)


def _machine(vendor: str) -> dict:
    from django.db import connection

    if vendor == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
    memory = ""
    try:
        total_kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        memory = f"{total_kb / 2**20:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        # Other work on the machine shows here: the timings of a shared machine are noisier.
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = []
    return {"load_average": load, "database_version": database, "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "memory": memory, "processor": platform.processor() or platform.machine()}  # fmt: skip


def _checkout() -> dict:
    """The commit measured, and which files outside bench/ differed from it (others' work in progress)."""
    import subprocess

    root = RESULTS.parent.parent

    def git(*args) -> str:
        try:
            # Fixed arguments, git from the PATH: the same git the developer runs.
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30).stdout  # noqa: S603, S607
        except (OSError, subprocess.SubprocessError):
            return ""

    modified = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if not line[3:].startswith("bench/")
    ]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "modified_outside_bench": modified}


def _row(name: str, full: dict, tenth: dict) -> dict:
    entry, small = full[name], tenth.get(name, {})
    op = entry["op"]
    row = {"name": name, "description": op.description, "baseline": op.baseline_description, "target": op.target}
    if not entry["available"]:
        return {**row, "available": False, "why": entry["why"], "median_ms": None, "baseline_ms": None, "ratio": None,
                "target_ratio": op.target_ratio, "queries": None, "queries_at_tenth": None, "peak_mb": None}  # fmt: skip
    median, baseline = entry["median_ms"], entry["baseline_ms"]
    if name == "verify_chain":
        from bench.operations import VERIFY_TARGET_EVENTS_PER_SECOND

        baseline = entry["events"] / VERIFY_TARGET_EVENTS_PER_SECOND * 1000
        row["events"] = entry["events"]
        row["events_per_second"] = round(entry["events"] / (median / 1000))
        row["events_per_cpu_second"] = round(entry["events"] / (entry["cpu_ms"] / 1000))
        row["events_at_tenth"] = small.get("events")
        row["peak_mb_at_tenth"] = round(small["peak_mb"], 2) if "peak_mb" in small else None
        row["workers"], row["workers_at_tenth"] = entry.get("workers"), small.get("workers")
        row["all_processes_peak_mb"] = round(entry["all_processes_peak_mb"], 2)
    ratio = median / baseline if baseline else None
    row.update({
        "available": True,
        "median_ms": round(median, 2),
        "baseline_ms": round(baseline, 2) if baseline is not None else None,
        "ratio": round(ratio, 2) if ratio is not None else None,
        "target_ratio": op.target_ratio,
        "queries": entry["queries"],
        "queries_at_tenth": small.get("queries"),
        "baseline_queries": entry.get("baseline_queries"),
        "peak_mb": round(entry["peak_mb"], 2),
        "cpu_ms": round(entry["cpu_ms"], 2),
        "baseline_cpu_ms": round(entry["baseline_cpu_ms"], 2) if entry.get("baseline_cpu_ms") is not None else None,
        # This process's CPU on both sides: on SQLite the whole work, on PostgreSQL the work outside the server.
        "cpu_ratio": round(entry["cpu_ms"] / entry["baseline_cpu_ms"], 2) if entry.get("baseline_cpu_ms") else None,
        "repeats": entry["repeats"],
    })  # fmt: skip
    if name == "api_list" and full.get("selector_list", {}).get("median_ms"):
        row["ratio_to_selector"] = round(median / full["selector_list"]["median_ms"], 2)
    met = []
    if op.target_ratio is not None:
        met.append(ratio <= op.target_ratio)
    if name == "selector_list":
        met.append(entry["queries"] == 2)
    if name == "api_compliance_report":
        met.append(median < 500)
    if name == "verify_chain" and row["peak_mb_at_tenth"] is not None:
        # Flat: the whole chain needs no more memory than a tenth of it, give or take a batch's worth.
        met.append(row["peak_mb"] <= row["peak_mb_at_tenth"] * 1.5 + 1)
    row["target_met"] = all(met)
    row["queries_flat"] = row["queries"] == row["queries_at_tenth"]
    return row


def _met(row: dict) -> tuple[bool, bool]:
    """(target met, same queries at N/10) of a stored row, recomputed so older result files read alike."""
    met = []
    if row.get("target_ratio") is not None:
        met.append(row["ratio"] <= row["target_ratio"])
    if row["name"] == "selector_list":
        met.append(row["queries"] == 2)
    if row["name"] == "api_compliance_report":
        met.append(row["median_ms"] < (500 if row.get("target_ratio") == 2.0 else 2000))
    if row["name"] == "verify_chain" and row.get("peak_mb_at_tenth") is not None:
        met.append(row["peak_mb"] <= row["peak_mb_at_tenth"] * 1.5 + 1)
    return all(met), row["queries"] == row["queries_at_tenth"]


def _differ(row: dict) -> str:
    if row["name"] == "verify_chain":
        # The issue leaves verification aside: it reads a batch a query, here or in workers on their own connections.
        return " (queries differ: a batch of events a query; left aside)"
    return " (queries differ)"


def print_table(result: dict) -> None:
    header = f"{'operation':<24}{'median ms':>11}{'cpu ms':>10}{'baseline ms':>13}{'ratio':>9}{'target':>8}{'queries':>9}{'at N/10':>9}{'peak MB':>9}  met"
    print()
    print(
        f"{result['database']}, {result['referrals']:,} referrals, {result['machine']['cpus']} CPUs, {result['machine']['processor']}"
    )
    print(header)
    print("-" * len(header))
    for row in result["operations"]:
        if not row["available"]:
            print(f"{row['name']:<24}{'not available: ' + row['why']}")
            continue

        def show(value, spec):
            return format(value, spec) if value is not None else format("-", ">" + spec.split(".")[0].rstrip("df"))

        print(
            f"{row['name']:<24}{show(row['median_ms'], '11.2f')}{show(row.get('cpu_ms'), '10.2f')}{show(row['baseline_ms'], '13.2f')}{show(row['ratio'], '9.2f')}"
            f"{show(row['target_ratio'], '8.1f')}{show(row['queries'], '9d')}{show(row['queries_at_tenth'], '9d')}"
            f"{show(row['peak_mb'], '9.2f')}  {'yes' if row['target_met'] else 'NO'}{'' if row['queries_flat'] else _differ(row)}"
        )
        if row["name"] == "verify_chain":
            print(f"{'':<24}{row['events_per_second']:,} events/s ({row.get('events_per_cpu_second', 0):,} per CPU second) over {row['events']:,} events; peak {row['peak_mb']} MB "
                  f"a process against {row['peak_mb_at_tenth']} MB over {row['events_at_tenth']:,} "
                  f"({row.get('workers') or 'no'} workers, {row.get('all_processes_peak_mb', '-')} MB in all)")  # fmt: skip
        if row.get("ratio_to_selector"):
            print(f"{'':<24}{row['ratio_to_selector']}x the bare selector")
    print()


def markdown(result: dict) -> str:
    """The table of a stored result as Markdown, for bench/README.md."""
    lines = [
        "| operation | median ms | CPU ms | baseline ms | ratio | target | target met | queries | at N/10 | peak MB |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in result["operations"]:
        if not row["available"]:
            lines.append(f"| {row['name']} | not available: {row['why']} | | | | | | | |")
            continue
        cells = [
            row["median_ms"],
            row.get("cpu_ms"),
            row["baseline_ms"],
            row["ratio"],
            row["target_ratio"],
            row["queries"],
            row["queries_at_tenth"],
            row["peak_mb"],
        ]
        shown = ["-" if value is None else f"{value:,}" for value in cells]
        met, flat = _met(row)
        verdict = "-" if row["name"] in ("api_list", "selector_detail", "api_detail") else ("yes" if met else "**no**")
        shown.insert(5, verdict)
        if not flat:
            shown[6] = f"**{shown[6]}**"
        lines.append(f"| {row['name']} | {' | '.join(shown)} |")
    return "\n".join(lines)


def _load_average() -> list[str]:
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=100_000, help="referrals in the world (default 100,000)")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs of each operation after the warm-up (default 15)")
    parser.add_argument(
        "--slow-repeat", type=int, default=3, help="timed runs of the slow operations (report, verification; default 3)"
    )
    parser.add_argument("--rebuild", action="store_true", help="build the worlds again even if stored ones fit")
    parser.add_argument("--build-only", action="store_true", help="build (or check) the two worlds and stop")
    parser.add_argument("--profile", help="also write a pyinstrument profile of this operation to bench/results/")
    parser.add_argument("--markdown", metavar="JSON", help="print the table of a stored result as Markdown and stop")
    parser.add_argument("--only", metavar="OPERATION", help="measure only this operation (e.g. verify_chain), at N and N/10")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    started, load_at_start = time.perf_counter(), _load_average()
    _configure()
    from django.db import connection

    vendor = connection.vendor
    if vendor == "postgresql":
        _ensure_database()
    tenth_size = max(1, args.referrals // 10)
    if args.build_only:
        for size in (tenth_size, args.referrals):
            use_world(size, rebuild=args.rebuild)
        print(f"Worlds built ({time.perf_counter() - started:.0f}s).")
        return 0
    print(f"Query counts and memory at N/10 = {tenth_size:,} referrals:", flush=True)
    tenth_world = use_world(tenth_size, rebuild=args.rebuild)
    tenth = measure(repeat=args.repeat, timing=False, only=args.only)
    print(f"Measuring at N = {args.referrals:,} referrals:", flush=True)
    full_world = use_world(args.referrals, rebuild=args.rebuild)
    full = measure(repeat=args.repeat, slow_repeat=args.slow_repeat, timing=True, profile=args.profile, only=args.only)
    result = {
        "database": "SQLite" if vendor == "sqlite" else "PostgreSQL",
        "referrals": args.referrals,
        "machine": _machine(vendor),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "checkout": _checkout(),
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "world": {"at_n": full_world, "at_tenth": tenth_world},
        "operations": [_row(name, full, tenth) for name in full],
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    # The load when the run began beside the load at its end (machine.load_average): a run is only as quiet as the
    # machine was all along.
    result["machine"]["load_average_at_start"] = load_at_start
    print_table(result)
    _write(result, args.only)
    return 0


def _write(result: dict, only: str | None) -> None:
    """The result as bench/results/<database>-<N>.json and latest.json; one operation's alone under its own name."""
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    label = f"{result['database'].lower()}-{result['referrals']}"
    if only:
        label = f"only-{only}-{label}"
    else:
        (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"{label}.json").write_text(text)
    print(f"Written to bench/results/{label}.json ({result['seconds']:.0f}s in all).")


if __name__ == "__main__":
    sys.exit(main())
