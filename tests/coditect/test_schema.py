"""The OpenAPI schema and the docs page, both served without fetching anything."""

import json

import pytest
import yaml


def test_schema_is_openapi_yaml_by_default(client):
    response = client.get("/api/v5/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Coditect platform API"


def test_schema_as_json_by_accept_header_or_query(client):
    for response in (
        client.get("/api/v5/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"),
        client.get("/api/v5/schema", {"format": "json"}),
    ):
        assert response.status_code == 200
        assert json.loads(response.content)["openapi"].startswith("3.")


def test_docs_page_links_the_schema_and_loads_nothing_from_elsewhere(client):
    response = client.get("/api/v5/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/api/v5/schema/?format=json"' in page
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page
    assert client.get("/api/v5/docs").status_code == 200


@pytest.mark.urls("tests.coditect.urls")
def test_each_route_is_documented_once_in_its_canonical_spelling(client):
    schema = json.loads(client.get("/api/v5/schema/", {"format": "json"}).content)
    assert "/api/test/echo" in schema["paths"]
    assert "/api/test/echo/" not in schema["paths"]


@pytest.mark.urls("tests.coditect.urls")
def test_docs_page_lists_the_operations(client):
    page = client.get("/api/v5/docs/").content.decode()
    assert "<code>/api/test/echo</code>" in page
    assert "<code>/api/test/echo/</code>" not in page
