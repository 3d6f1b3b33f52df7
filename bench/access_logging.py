"""Only the access-logging operation, in a small world of its own: what signing the chain heads costs (issue 14).

    python -m bench.access_logging [--repeat 41] [--label before]

Makes (once) a provider, a therapist and 50 referrals through the services, in bench/results/access-logging.sqlite3
or, with DATABASE_URL, that database; then times `access_logging` as bench.run does (GET /api/v1/referrals/ with its
50 access events, through DRF's test client and token auth) against the same request with firewall.record_listed
patched out, in turn, and prints the medians (wall clock and CPU). Run it on a checkout before a change and after
it: the ratio of the two `access_logging` medians is what the change costs. (The stored worlds of bench.run could
not be built on this commit's main: bench/world.py predates the intake columns and authorisation-change events.)
"""

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _world():
    from colocation.models import Organisation, OrganisationKind, Role
    from colocation.services import create_staff_member
    from consent import services
    from consent.access.log import AccessContext
    from tests.factories import OrganisationFactory, SiteFactory

    if Organisation.objects.filter(name="Bench provider").exists():
        from colocation.models import User

        return User.objects.get(username="bench-therapist")
    provider = OrganisationFactory(name="Bench provider", kind=OrganisationKind.THERAPY_PROVIDER)
    agency = OrganisationFactory(name="Bench agency", kind=OrganisationKind.BENEFITS_AGENCY)
    site = SiteFactory(name="Bench clinic", host_organisation=agency, provider=provider)
    therapist = create_staff_member(username="bench-therapist", password="bench-pass-2026", organisation=provider,
                                    role=Role.THERAPIST)  # fmt: skip
    for number in range(50):
        services.create_referral(
            context=AccessContext.for_command(therapist, "bench"), local_reference=f"B-{number:05d}", site=site,
            referred_on=date(2026, 9, 14), source_of_referral="B1", how_heard="gp", pathway="self_referral",
        )  # fmt: skip
    return therapist


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument("--label", default="", help="a name for this run in the printed JSON (e.g. before, after)")
    args = parser.parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        settings.DATABASES["default"]["NAME"] = str(RESULTS / "access-logging.sqlite3")
    django.setup()
    from unittest import mock

    from django.core.management import call_command
    from django.db import connection
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    from bench import operations
    from consent.access import firewall

    if connection.vendor == "postgresql":
        from bench import run

        run._ensure_database()
    call_command("migrate", verbosity=0, interactive=False)
    therapist = _world()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=therapist, expiry=None)[1]}")

    def logged():
        return operations._ok(client.get("/api/v1/referrals/"))

    def unlogged():
        with mock.patch.object(firewall, "record_listed", lambda context, rows: None):
            return operations._ok(client.get("/api/v1/referrals/"))

    op = operations.Operation("access_logging", "", logged, unlogged, "")
    started = time.perf_counter()
    result = operations.medians(op, args.repeat, warmup=3)
    _, queries, _ = operations.instrumented(op.run)
    print(json.dumps({
        "label": args.label, "database": connection.vendor, "repeat": args.repeat, "queries": queries,
        **{k: round(v, 3) for k, v in result.items()},
        "ratio": round(result["median_ms"] / result["baseline_ms"], 3),
        "cpu_ratio": round(result["cpu_ms"] / result["baseline_cpu_ms"], 3),
        "seconds": round(time.perf_counter() - started, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
