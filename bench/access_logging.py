"""Only the access-logging operation, at any size: what signing the chain heads costs (issue 14).

    python -m bench.access_logging [--referrals 10000] [--repeat 41]

Builds (or reuses) the world of N referrals as bench.run does, then times `access_logging` (GET
/api/v1/referrals/ with its 50 access events) against the same request with the logging patched out, in
turn, and prints the medians (wall clock and CPU). Run it on a checkout before a change and after it, on the
same world: the ratio of the two `access_logging` medians is what the change costs.
"""

import argparse
import json
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument("--label", default="", help="a name for this run in the printed JSON (e.g. before, after)")
    args = parser.parse_args(argv)
    from bench import run

    run._configure()
    from django.db import connection

    if connection.vendor == "postgresql":
        run._ensure_database()
    run.use_world(args.referrals, rebuild=False)
    from bench import operations

    subject = operations.subject()
    op = next(o for o in operations.operations(subject) if o.name == "access_logging")
    started = time.perf_counter()
    result = operations.medians(op, args.repeat, warmup=3)
    _, queries, _ = operations.instrumented(op.run)
    print(json.dumps({
        "label": args.label, "database": connection.vendor, "referrals": args.referrals, "repeat": args.repeat,
        "queries": queries, **{k: round(v, 3) for k, v in result.items()},
        "ratio": round(result["median_ms"] / result["baseline_ms"], 3),
        "cpu_ratio": round(result["cpu_ms"] / result["baseline_cpu_ms"], 3),
        "seconds": round(time.perf_counter() - started, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
