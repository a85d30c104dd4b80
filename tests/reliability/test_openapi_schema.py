"""What the served OpenAPI schema promises clients, read as a client generator reads it."""

from __future__ import annotations

from typing import Any

from tests.reliability.test_openapi_responses import OPERATIONS, SCHEMA

PAIR = {"access", "refresh", "token_type", "expires_in", "refresh_expires_in"}


def _component(ref: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = SCHEMA["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]
    return schema


def _operation(label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    operation: dict[str, Any] = SCHEMA["paths"][path][method.lower()]
    return operation


def _body(label: str, status: int, media: str = "application/json") -> dict[str, Any]:
    response = _operation(label)["responses"][str(status)]
    return _component(response["content"][media]["schema"])


def test_sign_in_answers_carry_the_token_pair() -> None:
    for label, status, extra in [
        ("POST /api/v5/auth/login", 200, {"user"}),
        ("POST /api/v5/auth/login/mfa", 200, {"user"}),
        ("POST /api/v5/auth/register", 201, {"user", "tenant"}),
        ("POST /api/v5/auth/refresh", 200, set()),
    ]:
        body = _body(label, status)
        assert set(body["required"]) == PAIR | extra, (label, body["required"])
        assert set(body["properties"]) == PAIR | extra, label


def test_the_bearer_scheme_also_names_api_tokens() -> None:
    scheme = SCHEMA["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "cdt_" in scheme["description"]
    assert "bearerFormat" not in scheme  # an API token is no JWT


def test_every_error_is_a_problem_with_its_codes() -> None:
    for label in OPERATIONS:
        for status, response in _operation(label)["responses"].items():
            if status < "400":
                continue
            assert list(response["content"]) == ["application/problem+json"], (label, status)
            media = response["content"]["application/problem+json"]
            assert set(_component(media["schema"])["required"]) >= {
                "type", "title", "status", "detail", "code", "errors", "request_id"
            }, (label, status)  # fmt: skip
            codes = [example["value"]["code"] for example in media["examples"].values()]
            assert codes, (label, status)
            for code in codes:
                assert f"`{code}`" in response["description"], (label, status, code)


def _headers(label: str, status: int) -> dict[str, Any]:
    headers: dict[str, Any] = _operation(label)["responses"][str(status)].get("headers", {})
    return headers


def test_challenges_and_waits_are_documented() -> None:
    secured = 0
    for label in OPERATIONS:
        operation = _operation(label)
        if {"bearer": []} in operation.get("security", []):
            secured += 1
            assert "401" in operation["responses"], label
        if "401" in operation["responses"]:
            assert _headers(label, 401)["WWW-Authenticate"]["required"], label
        if "429" in operation["responses"]:
            assert _headers(label, 429)["Retry-After"]["schema"]["type"] == "integer", label
    assert secured > 20


def test_versions_and_locations_of_workspace_sessions_are_documented() -> None:
    session = "/api/v5/sessions/{session_id}"
    assert {"ETag", "Location"} <= set(_headers("POST /api/v5/sessions", 201))
    assert {"ETag", "Location"} <= set(_headers(f"POST {session}/fork", 201))
    assert "ETag" in _headers(f"GET {session}", 200)
    assert "ETag" in _headers(f"PATCH {session}", 200)
    assert "ETag" in _headers(f"PATCH {session}", 412)
    for method in ("PATCH", "DELETE"):
        parameters = _operation(f"{method} {session}")["parameters"]
        assert {"name": "If-Match", "in": "header"}.items() <= next(
            p for p in parameters if p["name"] == "If-Match"
        ).items(), method
    assert "412" in _operation(f"DELETE {session}")["responses"]


RATE_LIMIT_HEADERS = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}


def test_every_authenticated_operation_documents_its_rate_limit() -> None:
    limited = 0
    for label in OPERATIONS:
        operation = _operation(label)
        responses = operation["responses"]
        if {"bearer": []} not in operation.get("security", []):
            for status in responses:
                assert not RATE_LIMIT_HEADERS & set(_headers(label, int(status))), label
            continue
        limited += 1
        examples = responses["429"]["content"]["application/problem+json"]["examples"]
        assert "rate_limited" in {example["value"]["code"] for example in examples.values()}
        assert _headers(label, 429)["Retry-After"]["required"], label
        token_optional = {} in operation["security"]
        for status in responses:
            headers = _headers(label, int(status))
            if status == "401":
                assert not RATE_LIMIT_HEADERS & set(headers), label
                continue
            assert set(headers) >= RATE_LIMIT_HEADERS, (label, status)
            # Required wherever the request was counted before anything could answer.
            counted = not token_optional and status not in ("403", "411", "413")
            for name in RATE_LIMIT_HEADERS:
                assert headers[name].get("required", False) is counted, (label, status, name)
                assert headers[name]["schema"]["type"] == "integer", (label, status, name)
    assert limited > 20


def _codes(label: str, status: str) -> set[str]:
    media = _operation(label)["responses"][status]["content"]["application/problem+json"]
    return {example["value"]["code"] for example in media["examples"].values()}


def test_every_operation_that_takes_a_body_documents_its_refusals() -> None:
    # The middleware answers them before any view (coditect/middleware.py reject_large_body):
    # 411 for a chunked body a WSGI server cannot end, 413 for one over the limit. (A DELETE
    # that takes a body has no requestBody in the document, but its 400 and 413 say it.)
    with_body = 0
    for label in OPERATIONS:
        operation = _operation(label)
        takes_body = "requestBody" in operation or "413" in operation["responses"]
        if not takes_body:
            assert "411" not in operation["responses"], label
            continue
        with_body += 1
        assert _codes(label, "411") == {"length_required"}, label
        assert "body_too_large" in _codes(label, "413"), label
    assert with_body > 20
