"""The OpenAPI schema as served (the docs pages: test_api_docs.py)."""

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


@pytest.mark.urls("tests.coditect.urls")
def test_each_route_is_documented_once_in_its_canonical_spelling(client):
    schema = json.loads(client.get("/api/v5/schema/", {"format": "json"}).content)
    assert "/api/test/echo" in schema["paths"]
    assert "/api/test/echo/" not in schema["paths"]
