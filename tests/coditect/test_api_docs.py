"""The API docs pages: Swagger UI and Redoc from this server's static files, never a CDN."""

from __future__ import annotations

import re

import pytest
from channels.testing import ApplicationCommunicator
from django.test import Client

from coditect.asgi import application

PAGES = ["/api/v5/docs/", "/api/v5/redoc/"]
_ASSET = re.compile(r'(?:src|href|spec-url)="([^"]+)"')
_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def _assets(html: str) -> list[str]:
    return _ASSET.findall(html)


@pytest.mark.parametrize("path", PAGES)
def test_docs_pages_load_nothing_from_another_site(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<script" in html
    # No absolute or scheme-relative URL at all: every asset is a path on this server.
    assert _URL.findall(html) == []
    assets = _assets(html)
    assert assets
    assert all(asset.startswith("/") and not asset.startswith("//") for asset in assets), assets
    assert client.get(path.rstrip("/")).status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_docs_pages_run_no_inline_script(client: Client, path: str) -> None:
    response = client.get(path)
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    for attributes, body in scripts:
        assert 'src="/' in attributes, attributes
        assert body.strip() == ""
    assert "<style" not in html
    assert " style=" not in html
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    # Swagger UI needs no inline style; Redoc's styled-components does (and a blob: worker).
    inline_styles = path == "/api/v5/redoc/"
    assert ("'unsafe-inline'" in directives["style-src"]) == inline_styles, policy


def test_swagger_ui_initializer_is_a_script_of_this_server(client: Client) -> None:
    html = client.get("/api/v5/docs/").content.decode()
    (initializer,) = [a for a in _assets(html) if a.startswith("/api/v5/docs/?script")]
    response = client.get(initializer)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    script = response.content.decode()
    assert '"/api/v5/schema/"' in script
    assert '"validatorUrl": null' in script  # no badge from validator.swagger.io
    assert _URL.findall(script) == []


@pytest.mark.parametrize("path", PAGES)
async def test_every_asset_of_the_docs_pages_is_served_by_the_asgi_app(path: str) -> None:
    """Through coditect.asgi's application as daphne runs it (DEBUG is off in tests): the
    static files are served without DEBUG and without a proxy in front."""
    status, headers, body = await asgi_get(path)
    assert status == 200
    for asset in _assets(body.decode()):
        if asset.startswith("/api/v5/schema/"):
            continue  # the schema: tests/coditect/test_schema.py
        asset_path, _, query = asset.partition("?")
        status, headers, content = await asgi_get(asset_path, query)
        assert status == 200, asset
        assert content, asset
        if asset_path.endswith(".js") or query.startswith("script"):
            assert "javascript" in headers["content-type"], (asset, headers["content-type"])
        if asset_path.endswith(".css"):
            assert headers["content-type"].startswith("text/css"), asset


async def asgi_get(path: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET through the ASGI application."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")],
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    content = b""
    while True:
        chunk = await communicator.receive_output(5)
        content += chunk.get("body", b"")
        if not chunk.get("more_body"):
            break
    await communicator.wait(5)
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content


def test_the_docs_pages_are_not_operations_of_the_schema(client: Client) -> None:
    schema = client.get("/api/v5/schema/", {"format": "json"}).json()
    assert not [path for path in schema["paths"] if "docs" in path or "redoc" in path]
