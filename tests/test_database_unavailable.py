"""A database that cannot be reached is a 503 with Retry-After, never a 500, wherever the request finds it gone:
opening the request's transaction, inside the view, in the access log, in the exception handler, committing,
or in a middleware outside the view. Under the API the answer is the project's JSON error shape, elsewhere a
plain page; nothing is half-written, and the next request after the database returns is answered as usual.

Most tests make the connection fail where a real outage makes it fail (Django's own `ensure_connection`, a
statement, the commit). The PostgreSQL-only tests at the end take the real database away: a request pointed at
a closed port, and a request whose server process is terminated in the middle of its view.
"""

import socket
from contextlib import contextmanager
from unittest import mock

import psycopg
import pytest
from django.apps import apps
from django.db import OperationalError, close_old_connections, connections
from django.test import Client as BrowserClient
from rest_framework.test import APIClient

import consent.access.refusals
from tests.conftest import api_client, postgres_only
from tests.helpers import intake_body

LOST = "server closed the connection unexpectedly"
REFUSED = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'


def all_rows() -> dict[str, int]:
    """Rows in every table of the project (and Django's, axes', guardian's): what 'nothing written' means."""
    return {model._meta.label: model._base_manager.count() for model in apps.get_models() if not model._meta.proxy}


@contextmanager
def unreachable():
    """Every attempt to use the connection fails before any statement, as it does while the server is down: this
    is where Django opens the request's transaction (Atomic.__enter__ asks the connection for its autocommit)."""

    def refuse():
        raise OperationalError(REFUSED)

    with mock.patch.object(connections["default"], "ensure_connection", refuse):
        yield


@contextmanager
def lost_at(statement: str):
    """The connection is lost when the request reaches a statement containing `statement` ('' for the next one)."""

    def lose(execute, sql, params, many, context):
        if statement in sql:
            raise OperationalError(LOST)
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(lose):
        yield


@contextmanager
def commit_fails():
    def fail():
        raise OperationalError(LOST)

    with mock.patch.object(connections["default"], "commit", fail):
        yield


def assert_503_json(response, code="database_unavailable", retry_after="5"):
    assert response.status_code == 503, (response.status_code, response.content[:300])
    assert response["Retry-After"] == retry_after
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == code
    assert response["X-Request-ID"]


# Transactional (real BEGIN, COMMIT and ROLLBACK, no test transaction around the request), so "nothing written"
# is what another connection would see. Fixture order as tests/conftest.py asks, for the append-only triggers.
@pytest.fixture
def committed_world(append_only_relaxed_for_flush, transactional_db, drop_append_only_triggers_at_teardown, world):
    return world


# Where in an intake (client row, referral row, permissions, access events, one transaction) the database goes.
FAILURES = {
    "opening the request's transaction": unreachable,
    # The client row is already written in the request's transaction when the referral's insert fails.
    "inside the view, after a first row was written": lambda: lost_at('INSERT INTO "consent_referral"'),
    "committing the request's transaction": commit_fails,
}


@pytest.mark.parametrize("where", FAILURES)
def test_an_intake_answers_503_with_retry_after_and_writes_nothing(committed_world, where):
    world = committed_world
    client = api_client(world.therapist)
    before = all_rows()

    with FAILURES[where]():
        response = client.post("/api/v1/referrals/", intake_body(world), format="json")

    assert_503_json(response)
    assert "nothing was saved" in response.json()["detail"]
    assert "KTT-000999" not in response.content.decode()
    assert all_rows() == before
    # The database is back: the same intake goes through, once.
    again = client.post("/api/v1/referrals/", intake_body(world), format="json")
    assert again.status_code == 201, again.content[:300]
    after = all_rows()
    assert (after["consent.Client"], after["consent.Referral"]) == (before["consent.Client"] + 1, before["consent.Referral"] + 1)


def test_a_read_that_loses_the_database_in_its_view_gives_none_of_the_client(world):
    client = api_client(world.therapist)
    before = all_rows()

    with lost_at('FROM "consent_referral"'):
        response = client.get(f"/api/v1/referrals/{world.referral.pk}/")

    assert_503_json(response)
    for identifier in (str(world.referral.pk), "KTT-000123", "9434765919"):
        assert identifier not in response.content.decode()
    assert all_rows() == before


def test_a_sign_in_that_cannot_reach_the_database_is_a_503_not_a_refusal(world):
    with unreachable():
        response = APIClient().post("/api/v1/auth/token/", {"username": "therapist", "password": "whatever"}, format="json")

    assert_503_json(response)


def test_losing_the_database_while_writing_the_access_log_is_the_logs_503(world):
    client = api_client(world.therapist)
    before = all_rows()

    with lost_at('INSERT INTO "access_accessevent"'):
        response = client.get(f"/api/v1/referrals/{world.referral.pk}/")

    assert_503_json(response, code="access_log_unavailable", retry_after="30")
    assert "KTT-000123" not in response.content.decode()
    assert all_rows() == before


def test_losing_the_database_while_logging_a_refusal_after_its_rollback_is_a_503(world, monkeypatch):
    # A refused attempt's denied events are written again once the request has rolled back, outside the view: the
    # database goes there, so the failure reaches the middleware, and the refusal is not answered without its log.
    log_refusal = consent.access.refusals.log_refusal

    def in_an_outage(refusal):
        with lost_at(""):
            log_refusal(refusal)

    monkeypatch.setattr(consent.access.refusals, "log_refusal", in_an_outage)
    client = api_client(world.work_coach)
    before = all_rows()

    response = client.get(f"/api/v1/referrals/{world.referral.pk}/")

    assert_503_json(response, code="access_log_unavailable", retry_after="30")
    # The whole request rolled back, its denied event with it: the database that would keep it was gone.
    assert all_rows() == before


def test_the_admin_answers_a_plain_503_page(world):
    browser = BrowserClient()
    browser.force_login(world.admin)

    with unreachable():
        response = browser.get("/admin/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "The database cannot be reached for the moment; nothing was saved." in page
    assert "Traceback" not in page


@pytest.mark.parametrize(("path", "json"), [("/api/v1/me/", True), ("/admin/", False)])
def test_a_middleware_that_reads_the_session_before_the_view_answers_503_too(world, settings, path, json):
    # Django's LoginRequiredMiddleware asks for request.user in process_view, before the view and its transaction:
    # the session and the user are read from the database there. Such a failure never reaches process_exception,
    # only Django's handler500.
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                      "django.contrib.auth.middleware.LoginRequiredMiddleware")  # fmt: skip
    settings.MIDDLEWARE = middleware
    browser = BrowserClient(raise_request_exception=False)
    browser.force_login(world.therapist)

    with unreachable():
        response = browser.get(path)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    # Outside the view nothing says whether a transaction had committed, so the answer promises nothing about it.
    if json:
        assert_503_json(response)
        assert "nothing was saved" not in response.json()["detail"]
    else:
        assert response["Content-Type"].startswith("text/html")
        assert "The database cannot be reached for the moment. Try again" in response.content.decode()


def test_other_errors_outside_a_view_are_still_500s(world, settings):
    settings.MIDDLEWARE = ["tests.test_database_unavailable.broken_middleware", *settings.MIDDLEWARE]

    response = APIClient(raise_request_exception=False).get("/api/v1/sites/")

    assert response.status_code == 500
    assert "Retry-After" not in response


def broken_middleware(get_response):
    def middleware(request):
        raise RuntimeError("a bug, not an outage")

    return middleware


# PostgreSQL, for real: no patch, the server itself is out of reach.


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def pointed_at_a_closed_port():
    """The request's connection goes to a port where no server listens, as while PostgreSQL is stopped."""
    db = connections["default"]
    saved = {key: db.settings_dict[key] for key in ("HOST", "PORT")}
    db.close()
    db.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        yield
    finally:
        db.close()
        db.settings_dict.update(saved)


def _terminate(backend_pid: int):
    """Terminate a server process from another connection, and wait until it has gone (PostgreSQL 14+)."""
    settings = connections["default"].settings_dict
    with psycopg.connect(dbname=settings["NAME"], user=settings["USER"], password=settings["PASSWORD"] or None,
                         host=settings["HOST"] or None, port=settings["PORT"] or None, autocommit=True) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [backend_pid])


@contextmanager
def server_process_terminated_at(statement: str):
    """The request's own server process is terminated (as in a crash or failover) just before `statement` runs."""
    db = connections["default"]

    def terminate_first(execute, sql, params, many, context):
        if statement in sql:
            _terminate(db.connection.info.backend_pid)
        return execute(sql, params, many, context)

    with db.execute_wrapper(terminate_first):
        yield


@postgres_only
def test_on_postgresql_a_request_to_a_stopped_server_is_a_503_and_the_next_one_after_it_returns_is_served(
    committed_world,
):
    world = committed_world
    client = api_client(world.therapist)
    before = all_rows()

    with pointed_at_a_closed_port():
        response = client.post("/api/v1/referrals/", intake_body(world), format="json")
        close_old_connections()  # as Django does when each request finishes

    assert_503_json(response)
    assert all_rows() == before
    assert client.post("/api/v1/referrals/", intake_body(world), format="json").status_code == 201


@postgres_only
def test_on_postgresql_a_server_process_lost_inside_the_view_is_a_503_with_nothing_half_written(committed_world):
    world = committed_world
    client = api_client(world.therapist)
    before = all_rows()

    with server_process_terminated_at('INSERT INTO "consent_referral"'):
        response = client.post("/api/v1/referrals/", intake_body(world), format="json")
    close_old_connections()  # as Django does when each request finishes: the broken connection is dropped

    assert_503_json(response)
    assert all_rows() == before
    assert client.post("/api/v1/referrals/", intake_body(world), format="json").status_code == 201
