"""Every error on an API path is an RFC 9457 problem; other paths keep Django's pages."""

import json

import pytest

pytestmark = pytest.mark.urls("tests.coditect.urls")

FIELDS = {"type", "title", "status", "detail", "code", "errors", "request_id"}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:coditect:problem:{code}"
    assert body["request_id"] == response["X-Request-ID"]
    assert int(response["Content-Length"]) == len(response.content)
    return body


def test_unknown_api_path_is_a_problem_404(client):
    body = problem(client.post("/api/v5/nothing-here", {}), 404, "not_found")
    assert body["title"] == "Not Found"
    assert body["errors"] == []


def test_unknown_api_path_is_a_problem_404_under_debug_too(client, settings):
    settings.DEBUG = True
    problem(client.get("/api/v5/nothing-here/"), 404, "not_found")


def test_unknown_page_outside_the_api_stays_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_http404_in_a_view_keeps_its_detail(client):
    body = problem(client.get("/api/test/raise/not_found"), 404, "not_found")
    assert body["detail"] == "No such order."


@pytest.mark.parametrize("path", ["/api/test/echo", "/api/test/echo/"])
def test_routes_answer_with_and_without_slash(client, path):
    response = client.post(path, {"a": 1}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"echo": {"a": 1}}


@pytest.mark.parametrize("body", [b"{not json", b'{"a": NaN}', b"\xff\xfe", b'{"a": 1} trailing'])
def test_malformed_json_is_a_400(client, body):
    response = client.post("/api/test/echo", body, content_type="application/json")
    detail = problem(response, 400, "malformed_json")["detail"]
    assert detail


def test_body_that_is_not_json_is_a_415(client):
    response = client.post("/api/test/echo", b"a=1", content_type="text/plain")
    problem(response, 415, "unsupported_media_type")


def test_wrong_method_on_a_drf_view_is_a_405_with_allow(client):
    response = client.get("/api/test/echo")
    problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_wrong_method_on_a_plain_view_is_a_405_with_allow(client):
    response = client.delete("/healthz")
    problem(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"


def test_body_over_the_limit_is_a_413_before_the_view(client, settings):
    settings.CODITECT_MAX_BODY_BYTES = 1000
    body = json.dumps({"text": "x" * 1000})
    response = client.post("/api/test/echo", body, content_type="application/json")
    detail = problem(response, 413, "body_too_large")["detail"]
    assert "1000" in detail


def test_body_at_the_limit_is_accepted(client, settings):
    body = json.dumps({"text": "x" * 100})
    settings.CODITECT_MAX_BODY_BYTES = len(body)
    response = client.post("/api/test/echo", body, content_type="application/json")
    assert response.status_code == 200


def test_default_limit_is_two_mebibytes(client):
    body = json.dumps({"text": "x" * (2 * 1024 * 1024)})
    response = client.post("/api/test/echo", body, content_type="application/json")
    problem(response, 413, "body_too_large")


def test_content_length_that_is_not_a_number_is_a_400(client):
    response = client.post(
        "/api/test/echo", b"{}", content_type="application/json", CONTENT_LENGTH="ten"
    )
    problem(response, 400, "bad_request")


def test_validation_errors_are_listed_per_field(client):
    response = client.post(
        "/api/test/validate",
        {"email": "nope", "items": [{"name": "ok"}, {"name": "far too long"}, {}]},
        content_type="application/json",
    )
    body = problem(response, 400, "invalid")
    assert body["errors"] == [
        {"attr": "email", "code": "invalid", "detail": "Enter a valid email address."},
        {
            "attr": "items.1.name",
            "code": "max_length",
            "detail": "Ensure this field has no more than 5 characters.",
        },
        {"attr": "items.2.name", "code": "required", "detail": "This field is required."},
    ]
    assert body["detail"].startswith("email: Enter a valid email address.")


def test_errors_about_the_whole_body_have_no_attr(client):
    response = client.post(
        "/api/test/validate",
        {"email": "a@blocked.example", "items": []},
        content_type="application/json",
    )
    body = problem(response, 400, "invalid")
    assert body["errors"] == [
        {"attr": None, "code": "blocked", "detail": "This domain may not order."}
    ]
    assert body["detail"] == "This domain may not order."


def test_a_json_body_that_is_not_an_object_is_a_400(client):
    response = client.post("/api/test/validate", [1, 2], content_type="application/json")
    body = problem(response, 400, "invalid")
    assert body["errors"][0]["attr"] is None


def test_missing_credentials_are_a_401_with_a_bearer_challenge(client):
    response = client.get("/api/test/raise/not_authenticated")
    problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_views_are_closed_unless_they_say_otherwise(client):
    # 403 while no authentication class is configured, 401 once one is.
    response = client.get("/api/test/closed")
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/problem+json"


def test_throttled_is_a_429_with_retry_after_rounded_up(client):
    response = client.get("/api/test/raise/throttled")
    problem(response, 429, "throttled")
    assert response["Retry-After"] == "3"


def test_api_error_carries_status_code_errors_and_headers(client):
    response = client.get("/api/test/raise/api_error")
    body = problem(response, 409, "email_taken")
    assert body["detail"] == "An account with this email exists."
    assert body["errors"] == [{"attr": "email", "code": "taken", "detail": "Already registered."}]
    assert response["X-Hint"] == "log in"


def test_a_crash_is_a_problem_500_that_reveals_nothing(api_client, caplog):
    response = api_client.get("/api/test/raise/crash")
    body = problem(response, 500, "server_error")
    assert "boom" not in response.content.decode()
    assert "request_id" in body["detail"]
    assert any(record.exc_info for record in caplog.records), "the traceback is logged"


def test_a_crash_under_debug_is_still_a_problem(api_client, settings):
    settings.DEBUG = True
    problem(api_client.get("/api/test/raise/crash"), 500, "server_error")


def test_disallowed_host_on_an_api_path_is_a_problem_400(client):
    response = client.get("/api/v5/schema/", HTTP_HOST="evil.example")
    problem(response, 400, "bad_request")


class TestRequestId:
    def test_a_sane_incoming_id_is_kept(self, client):
        response = client.get("/api/v5/nothing", HTTP_X_REQUEST_ID="edge-7f3a:42")
        assert response["X-Request-ID"] == "edge-7f3a:42"
        assert response.json()["request_id"] == "edge-7f3a:42"

    @pytest.mark.parametrize("incoming", ["", "a b", "x" * 129, "<script>", "ü"])
    def test_anything_else_is_replaced(self, client, incoming):
        response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
        assert response["X-Request-ID"] != incoming
        assert len(response["X-Request-ID"]) == 32
        int(response["X-Request-ID"], 16)

    def test_each_request_gets_its_own(self, client):
        ids = {client.get("/healthz")["X-Request-ID"] for _ in range(3)}
        assert len(ids) == 3

    def test_pages_outside_the_api_carry_it_too(self, client):
        assert client.get("/no-such-page")["X-Request-ID"]
