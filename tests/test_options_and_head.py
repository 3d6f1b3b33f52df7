"""Every method on every route answers 2xx or 4xx, OPTIONS and HEAD included, whatever format is asked for.

Walks every URL pattern of the project (the permission matrix holds a row for each, so its concrete paths
cover them all), with real ids of both providers and made-up ones, as several roles, in JSON, CSV and HTML.
"""

import pytest
from django.db import transaction

from tests.conftest import api_client
from tests.endpoints import MATRIX, SIDES, build_scene, project_patterns

ROLES = ("anonymous", "therapist", "lead", "dpo", "other_provider_dpo", "reviewer", "work_coach", "admin")
FORMATS = ("", "format=json", "format=csv", "format=html", "format=fhir", "format=api")
OTHER_ROUTES = ("/api/schema/", "/api/docs/", "/api/redoc/", "/api/auth/login/", "/api/auth/logout/", "/api/v1/")


def _paths(scene) -> list[str]:
    paths = set(OTHER_ROUTES)
    for row in MATRIX:
        for side in SIDES if row.is_object_row else ("ours",):
            paths.add(row.concrete(scene, side, "dpo"))
    return sorted(paths)


def _with_format(path: str, query: str) -> str:
    if not query:
        return path
    return f"{path}{'&' if '?' in path else '?'}{query}"


@pytest.fixture
def scene(world):
    return build_scene(world)


def test_the_walk_reaches_every_url_pattern(scene):
    from django.urls import resolve

    reached = {resolve(path.split("?")[0]).func for path in _paths(scene)}
    missing = [route for route, pattern in project_patterns() if pattern.callback not in reached]
    assert not missing, missing


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD"])
def test_options_and_head_answer_2xx_or_4xx_on_every_route_as_every_role(scene, method):
    problems = []
    for role in ROLES:
        client = api_client(scene.world.user(role))
        for path in _paths(scene):
            for query in FORMATS:
                target = _with_format(path, query)
                with transaction.atomic():
                    response = client.generic(method, target)
                    transaction.set_rollback(True)
                if not (200 <= response.status_code < 300 or 400 <= response.status_code < 500):
                    problems.append(f"{method} {target} as {role}: {response.status_code}")
    assert not problems, "\n".join(problems)


def test_options_says_what_a_route_renders_and_parses_as_json(world):
    response = api_client(world.dpo).options(f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert "text/csv" in body["renders"] and "application/json" in body["parses"]
    assert "actions" not in body


def test_options_on_a_referral_writes_no_access_event_and_says_nothing_of_it(world):
    from consent.access.models import AccessEvent

    before = AccessEvent.objects.count()
    response = api_client(world.other_provider_therapist).options(f"/api/v1/referrals/{world.referral.pk}/")

    assert response.status_code == 200
    assert AccessEvent.objects.count() == before
    assert str(world.referral.client_id) not in response.content.decode()
