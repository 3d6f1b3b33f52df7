"""The API docs work with no internet: every script and stylesheet they load comes from the app itself."""

import json
import os
import re

import pytest
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from openapi_schema_validator import OAS30ReadValidator
from openapi_spec_validator import validate

from tests.conftest import PASSWORD

# Requests run in a transaction (ATOMIC_REQUESTS), so even the docs pages need the test database.
pytestmark = pytest.mark.django_db

ASSET = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


def _assets(html: str) -> list[str]:
    return [url for url in ASSET.findall(html) if not url.startswith("data:")]


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_page_and_every_asset_it_references_are_served_locally(page):
    client = Client()
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assets = _assets(html)
    assert any(url.endswith(".js") for url in assets), f"{page} references no script: {assets}"
    for url in assets:
        # Local paths only: a CDN (//cdn..., https://...) would leave the page blank without internet.
        assert url.startswith("/"), f"{page} loads {url} from outside the app"
        assert not url.startswith("//"), f"{page} loads {url} from outside the app"
        asset = client.get(url)
        assert asset.status_code == 200, f"{url} answered {asset.status_code}"
        assert len(_body(asset)) > 100, f"{url} is empty"


def test_swagger_ui_initialiser_points_at_the_local_schema():
    client = Client()
    html = client.get("/api/docs/").content.decode()
    assert "/api/schema/" in html
    assert "https://" not in "".join(_assets(html))


def test_the_schema_describes_the_api_without_warnings():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/api/v1/auth/token/", "/api/v1/me/", "/api/v1/sites/", "/api/v1/pilots/", "/api/v1/referrals/"):
        assert path in schema["paths"], path


def test_the_admin_lists_organisations_sites_pilots_and_users(world):
    client = Client()
    assert client.post("/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD}).status_code == 302
    for model in ("organisation", "site", "pilot", "user"):
        assert client.get(f"/admin/colocation/{model}/").status_code == 200, model
    # A user's page shows the staff profile inline, where an administrator sets role and organisation.
    page = client.get(f"/admin/colocation/user/{world.therapist.pk}/change/").content.decode()
    assert "staff_profile" in page or "Staff profile" in page


# ---- the contract a generated client relies on ---------------------------------------------------------------

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = "#/components/schemas/Error"
TAG_NAMES = {"therapist", "clinical lead", "DPO", "reviewer", "account"}


@pytest.fixture(scope="module")
def contract():
    """The schema as /api/schema/ serves it, as JSON."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def _operations(contract):
    return [(f"{method.upper()} {path}", operation) for path, item in contract["paths"].items()
            for method, operation in item.items() if method in METHODS]  # fmt: skip


def _walk(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_the_schema_validates_as_openapi_3_0(contract):
    assert contract["openapi"].startswith("3.0.")
    validate(contract)  # openapi-spec-validator: raises on any violation


def test_the_schema_is_generated_without_a_warning_or_an_error():
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", os.devnull)


def test_every_request_body_is_json_only_and_a_named_schema(contract):
    for label, operation in _operations(contract):
        body = operation.get("requestBody")
        if body is None:
            continue
        assert list(body["content"]) == ["application/json"], label
        assert body["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/"), label


def test_every_error_answer_is_the_named_error_schema_as_json(contract):
    for label, operation in _operations(contract):
        errors = {code: response for code, response in operation["responses"].items() if int(code) >= 400}
        assert {"400", "429", "503"} <= set(errors), label
        for code, response in errors.items():
            assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (label, code)
            assert response["description"], (label, code)


def test_every_success_body_is_a_named_schema_or_a_rendering(contract):
    for label, operation in _operations(contract):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                continue
            for media_type, content in response.get("content", {}).items():
                schema = content["schema"]
                if media_type in ("text/csv", "text/html"):
                    assert schema == {"type": "string"}, (label, media_type)
                else:
                    assert schema["$ref"].startswith("#/components/schemas/"), (label, media_type)


def test_only_the_log_and_the_reports_answer_in_more_than_json(contract):
    formats = {label: sorted({media for response in operation["responses"].values() if "content" in response
                              for media in response["content"]}) for label, operation in _operations(contract)}  # fmt: skip
    assert set(formats["GET /api/v1/access-events/"]) == {"application/json", "text/csv", "application/fhir+json"}
    assert set(formats["GET /api/v1/pilots/{pilot_id}/compliance-report/"]) == {"application/json", "text/csv", "text/html"}
    assert set(formats["GET /api/v1/referrals/{id}/fhir-consent/"]) == {"application/fhir+json", "application/json"}
    for label in ("GET /api/v1/access-events/alerts/", "GET /api/v1/access-events/verify/"):
        assert formats[label] == ["application/json"], label
        parameters = {p["name"] for p in contract["paths"][label.split(" ")[1]]["get"].get("parameters", [])}
        assert "format" not in parameters, label


def test_nullable_is_only_ever_written_beside_a_type(contract):
    # OpenAPI 3.0.3: nullable adds null to the type next to it, and does nothing beside allOf or a $ref alone.
    for schema in _walk(contract):
        if schema.get("nullable") is True:
            assert "type" in schema, schema


def test_a_strict_openapi_3_0_validator_accepts_the_nulls_the_api_sends(contract):
    components = {"components": contract["components"]}
    # Responses are read: OAS30ReadValidator, which also holds readOnly properties to `required`.
    detail = OAS30ReadValidator({"$ref": "#/components/schemas/ReferralDetail", **components})
    verification = OAS30ReadValidator({"$ref": "#/components/schemas/Verification", **components})
    referral = {
        "id": "5b7c1f0e-8f0d-4c7a-9a55-3f0f6d1c2b7e", "site": {"id": 1, "name": "Clinic"},
        "client": {"id": "6b7c1f0e-8f0d-4c7a-9a55-3f0f6d1c2b7e", "local_reference": "KTT-1", "nhs_number": "",
                   "year_of_birth": None},
        "referred_on": "2026-09-14", "source_of_referral": "B1", "how_heard": "gp", "pathway": "self_referral",
        "status": "awaiting_consent", "voluntariness": {"status": "unknown", "reasons": []},
        "created_at": "2026-09-14T10:00:00Z", "updated_at": "2026-09-14T10:00:00Z", "consents": [], "withdrawals": [], "scope_withdrawals": [],
        "voluntariness_checks": [], "discharge": None, "decline": None, "access": "assigned",
    }  # fmt: skip
    detail.validate(referral)
    detail.validate({**referral, "discharge": {"discharged_on": "2026-10-01", "reason": "completed",
                                               "recorded_at": "2026-10-01T10:00:00Z"}})  # fmt: skip
    assert not detail.is_valid({**referral, "discharge": {"reason": "completed"}})
    verification.validate({"verified": True, "events_checked": 3, "first_mismatch": None, "heads": {}})


def test_the_consent_body_states_the_consent_rules(contract):
    schemas = contract["components"]["schemas"]
    consent = schemas["ConsentInput"]
    assert {"template", "method", "given_at", "scopes", "acknowledgements"} <= set(consent["required"])
    scopes = consent["properties"]["scopes"]
    assert scopes["minItems"] == 1
    # "Not every scope is other than treatment": the list must contain treatment.
    assert scopes["not"] == {"type": "array", "items": {"not": {"type": "string", "enum": ["treatment"]}}}
    acknowledgements = schemas["AcknowledgementsInput"]
    names = {"attendance_is_optional", "no_effect_on_benefits", "service_separate_from_jobcentre",
             "nothing_shared_with_jobcentre", "free_to_withdraw"}  # fmt: skip
    assert set(acknowledgements["required"]) == names
    for name in names:
        assert acknowledgements["properties"][name]["enum"] == [True], name
        assert "default" not in acknowledgements["properties"][name], name
    assert "treatment" in contract["paths"]["/api/v1/referrals/{id}/consents/"]["post"]["description"]


def test_enumerations_carry_their_labels(contract):
    source = contract["components"]["schemas"]["SourceOfReferralEnum"]
    labels = dict(zip(source["enum"], source["x-enum-descriptions"], strict=True))
    assert labels["B1"] == "Self (Self Referral)"
    assert labels["M5"] == "Jobcentre Plus (Other)"
    assert "`M5` - Jobcentre Plus" in source["description"]
    for name, schema in contract["components"]["schemas"].items():
        if name.endswith("Enum"):
            assert len(schema["x-enum-descriptions"]) == len(schema["enum"]), name


def test_operations_are_grouped_by_user_with_their_own_descriptions(contract):
    assert {tag["name"] for tag in contract["tags"]} == TAG_NAMES
    assert all(tag["description"] for tag in contract["tags"])
    descriptions = []
    for label, operation in _operations(contract):
        assert operation["tags"] and set(operation["tags"]) <= TAG_NAMES, label
        assert operation.get("summary") and operation.get("description"), label
        descriptions.append(operation["description"])
    assert len(set(descriptions)) == len(descriptions), "an operation's description is copied from another's"
    assert "DESIGN.md" not in json.dumps(contract)


def test_request_bodies_refuse_unknown_fields_as_the_schema_says(contract):
    for label, operation in _operations(contract):
        body = operation.get("requestBody")
        if body is not None:
            name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert contract["components"]["schemas"][name].get("additionalProperties") is False, label
