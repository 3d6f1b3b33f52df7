"""Fuzzing with a tool nobody here wrote: schemathesis against the schema /api/schema/ serves, as each kind of user.

For every operation, and as a therapist, a clinical lead, a DPO, a reviewer and a work coach in turn,
schemathesis runs its examples, coverage and fuzzing phases in process against the WSGI application and
applies every check it has: no server error; statuses, content types, headers and bodies as the schema says;
invalid data refused (negative data rejection) and valid data accepted (positive data acceptance); a missing
or invalid credential refused (ignored auth); every method the schema does not list answered 405 with an
Allow header, OPTIONS included (unsupported methods); and the resource checks. The number of examples per
operation is bounded so the run stays a few minutes. The counts are printed in pytest's terminal summary.

One allowance, stated per operation below: for a body whose acceptance depends on records the schema cannot
know (an existing site or template, dates against the referral's and today's, the referral's state), a
schema-valid body may still be a 400 that names the field.
"""

import json
from collections import Counter
from contextlib import contextmanager

import pytest
import schemathesis
from django.conf import settings
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.python._constants.orchestrator import make_constants_value_source

from consent.access.models import AccessEvent
from consent.reports.periods import parse_period
from consent.reports.snapshots import freeze_report
from tests.conftest import PASSWORD, api_client, give_consent, intake_check

ROLES = ("therapist", "lead", "dpo", "reviewer", "work_coach")
USERNAMES = {"therapist": "therapist", "lead": "lead", "dpo": "dpo", "reviewer": "reviewer", "work_coach": "workcoach"}
SCHEMA_CLASS = "api.schema.AutoSchema"
FUZZING_EXAMPLES = 4
# Then, on real ids, so each role also reaches the rows it may (and is refused those it may not).
KNOWN_ID_EXAMPLES = 3

# Bodies checked against stored records: a schema-valid one may be refused with a 400 naming the field.
RECORD_BOUND = {
    "POST /api/v1/auth/token/": "the username and password must be an account's",
    "POST /api/v1/referrals/": "the site must be one of the recorder's organisation's; the NHS number's check digit; "
    "referred_on not in the future",
    "POST /api/v1/referrals/{id}/consents/": "the template must exist and be in force on the day; given_at between the "
    "referral and now; the referral's state allows consent; supersedes names a consent of this referral",
    "POST /api/v1/referrals/{id}/withdrawals/": "withdrawn_at between the consent and now; the referral is active",
    "POST /api/v1/referrals/{id}/voluntariness-checks/": "checked_at between the referral and now; not a declined referral",
    "POST /api/v1/referrals/{id}/decline/": "declined_on between the referral and today; the referral awaits consent",
    "POST /api/v1/referrals/{id}/discharge/": "discharged_on between the referral and today; the episode is not over",
    "POST /api/v1/referrals/{id}/assignments/": "the username must be a therapist of the referral's provider",
    "DELETE /api/v1/referrals/{id}/assignments/{username}/": "the username must be a therapist assigned to the referral",
    "GET /api/v1/pilots/{pilot_id}/compliance-report/": "period, or from and to, one or the other",
    "POST /api/v1/pilots/{pilot_id}/compliance-reports/": "period, or from and to, one or the other",
}
POSITIVE_STATUSES = ["2xx", "401", "403", "404", "409", "429"]

# What the run tried, reported once at the end of the session.
TRIED: Counter = Counter()
STATUSES: Counter = Counter()
OPERATIONS: set[str] = set()


class _Summary:
    """Prints the fuzzing summary in pytest's terminal summary, so it is visible in `make test`."""

    def pytest_terminal_summary(self, terminalreporter):
        if not TRIED:
            return
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(STATUSES.items()))
        terminalreporter.write_sep("-", "schemathesis")
        terminalreporter.write_line(
            f"schemathesis: {len(OPERATIONS)} operations, {sum(TRIED.values())} requests "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(TRIED.items()))}); statuses {statuses}"
        )


@pytest.fixture(scope="module", autouse=True)
def summary_line(request):
    # By name: pytest may set this module's fixtures up more than once in a session (when it reorders tests).
    if request.config.pluginmanager.get_plugin("schemathesis-summary") is None:
        request.config.pluginmanager.register(_Summary(), "schemathesis-summary")
    yield


def project_schema() -> dict:
    """The OpenAPI document the project serves at /api/schema/, as JSON, generated in process."""
    assert settings.REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] == SCHEMA_CLASS, "the schema served documents error answers"
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def config_for(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": 17,  # the same requests on every run: a failure in CI reproduces locally
        "headers": {"Authorization": f"Token {token}"},
        "generation": {"mode": "all", "max-examples": FUZZING_EXAMPLES, "no-shrink": True, "deterministic": True,
                       "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": False}},
        "checks": {"enabled": True, "positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
        "operations": [
            {"include-name": list(RECORD_BOUND),
             "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "400"]}}},
        ],
        "suppress-health-check": ["all"],
    })  # fmt: skip


@contextmanager
def wsgi_app():
    """The WSGI application, with Django's per-request connection cleanup held off as its test client does.

    Otherwise the end of the first request closes the connection that holds the test's transaction (on
    PostgreSQL), and every later request fails. Entered after any use of Django's test client, which puts
    the cleanup back after each of its requests.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def load_schema(app, token: str):
    schema = schemathesis.openapi.from_dict(project_schema(), config=config_for(token))
    schema.app = app
    return schema


def _checked(operation, role: str):
    def check(case):
        OPERATIONS.add(operation.label)
        response = case.call()
        TRIED[role] += 1
        STATUSES[response.status_code] += 1
        case.validate_response(response)

    return check


def run_operation(schema, operation, role: str) -> None:
    """Schemathesis's own test for one operation: the examples, coverage and fuzzing phases, every check.

    Built as schemathesis's pytest integration builds it (whose collection does not run under this pytest),
    and run here, in the test's thread, so every request sees the test's database transaction.
    """
    build_operation_test(
        config=schema.config, operation=operation, test_func=_checked(operation, role), given_kwargs={},
        feedback=FeedbackSources(constants_value_source=make_constants_value_source(schema)),
    )()  # fmt: skip


def run_on_known_ids(operation, role: str, headers: dict, known: dict) -> None:
    """Valid requests on real ids, every check applied to each answer."""
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, headers=headers, path_parameters=known)

    @hypothesis_settings(max_examples=KNOWN_ID_EXAMPLES, deadline=None, derandomize=True, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy)
    def run(case):
        _checked(operation, f"{role} (real ids)")(case)

    run()


def real_ids(world) -> dict:
    """An existing row for every path parameter: the referral with a consent and a check, an alert, a snapshot."""
    consent = give_consent(world.therapist, world.referral, world.template)
    check = intake_check(world.therapist, world.referral)
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")  # an alert on the provider's chain
    alert = AccessEvent.objects.filter(chain=world.kent).exclude(alert_reasons="").latest("seq")
    snapshot = freeze_report(pilot=world.pilot, period=parse_period("2026"), author=world.lead)
    return {"referral": str(world.referral.pk), "consent": consent.pk, "check": check.pk, "alert": alert.pk,
            "snapshot": snapshot.pk, "pilot": world.pilot.pk, "site": world.site.pk, "template": world.template.pk}  # fmt: skip


def known_path_parameters(ids: dict, operation) -> dict:
    path, names = operation.path, {p.name for p in operation.path_parameters}
    known = {}
    if "id" in names:
        for prefix, key in (("/api/v1/referrals/", "referral"), ("/api/v1/access-events/", "alert"),
                            ("/api/v1/sites/", "site"), ("/api/v1/pilots/", "pilot"),
                            ("/api/v1/consent-templates/", "template")):  # fmt: skip
            if path.startswith(prefix):
                known["id"] = ids[key]
                break
    if "record_id" in names:
        known["record_id"] = ids["check"] if "voluntariness-checks" in path else ids["consent"]
    if "pilot_id" in names:
        known["pilot_id"] = ids["pilot"]
    if "snapshot_id" in names:
        known["snapshot_id"] = ids["snapshot"]
    if "username" in names:
        known["username"] = "therapist"
    return known if set(known) == names else {}


def test_the_run_applies_every_check_schemathesis_has_and_tries_every_method():
    load_all_checks()
    schema = load_schema(None, "token")
    for operation in (result.ok() for result in schema.get_all_operations()):
        for phase in ("examples", "coverage", "fuzzing"):
            config = schema.config.checks_config_for(operation=operation, phase=phase)
            disabled = [check.__name__ for check in CHECKS.get_all() if not config.get_by_name(name=check.__name__).enabled]
            assert not disabled, (operation.label, phase, disabled)
        phases = schema.config.phases_for(operation=operation)
        assert phases.examples.enabled and phases.coverage.enabled and phases.fuzzing.enabled
        assert {"get", "put", "post", "patch", "delete", "options", "trace"} <= set(phases.coverage.unexpected_methods)


def signed_in_token(role: str) -> str:
    signed_in = api_client().post("/api/v1/auth/token/", {"username": USERNAMES[role], "password": PASSWORD}, format="json")
    assert signed_in.status_code == 200, signed_in.content
    return signed_in.json()["token"]


def ends_the_token(operation) -> bool:
    """Sign-out operations end the token they are sent with (one or every token of the account)."""
    return operation.path.startswith("/api/v1/auth/logout")


@pytest.mark.parametrize("role", ROLES)
def test_it_answers_every_operation_within_its_schema_as_each_role(world, role):
    ids = real_ids(world)
    token = signed_in_token(role)
    # Issued before the WSGI app is entered (Django's test client puts back the connection cleanup it holds off).
    spare_tokens = iter([signed_in_token(role) for _ in ("logout", "logoutall")])
    failures = {}
    with wsgi_app() as app:
        schema = load_schema(app, token)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 35
        # Sign-outs last, each with a token of its own: run earlier they would end the token every later operation
        # is sent with, and those would all answer 401, which tells nothing.
        operations.sort(key=ends_the_token)
        for operation in operations:
            try:
                if ends_the_token(operation):
                    schema = load_schema(app, next(spare_tokens))
                run_operation(schema, operation, role)
                known = known_path_parameters(ids, operation)
                if known:
                    run_on_known_ids(operation, role, {"Authorization": f"Token {token}"}, known)
            except (Exception, FailureGroup) as failure:  # every operation is tried; the failures are reported together
                failures[operation.label] = str(failure)
    assert not failures, "\n\n".join(f"{role} {label}:\n{text}" for label, text in failures.items())
