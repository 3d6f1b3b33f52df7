"""The API docs work with no internet: every script and stylesheet they load comes from the app itself."""

import re

import pytest
from django.test import Client

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
