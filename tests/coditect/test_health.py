"""The probes: /healthz answers without touching anything, /readyz checks its dependencies."""

import asyncio

import pytest

import fdb_backend
from coditect import health


@pytest.fixture
def memory_storage(settings):
    settings.CODITECT_STORAGE_URL = "memory:"
    yield
    fdb_backend.reset_database()


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_healthz(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_touches_no_dependency(client, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("healthz must not touch storage or the channel layer")

    monkeypatch.setattr(fdb_backend, "get_database", fail)
    monkeypatch.setattr(health, "get_channel_layer", fail)
    assert client.get("/healthz").status_code == 200


def test_healthz_answers_head(client):
    assert client.head("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/readyz", "/readyz/"])
def test_readyz_when_storage_and_channel_layer_answer(client, memory_storage, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"storage": "ok", "channel_layer": "ok"},
        "storage": {"engine": "memory"},
    }


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (fdb_backend.FDBError(1031), "FDBError 1031"),
        (OSError("unable to open database file"), "OSError"),
        (ValueError("unknown storage URL scheme"), "ValueError"),
    ],
)
def test_readyz_when_storage_fails(client, memory_storage, monkeypatch, error, reason):
    def broken():
        raise error

    monkeypatch.setattr(fdb_backend, "get_database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"] == {"storage": "error", "channel_layer": "ok"}
    assert body["errors"] == [
        {"attr": "storage", "code": "unavailable", "detail": f"storage failed ({reason})"}
    ]
    assert body["detail"] == f"Not ready: storage failed ({reason})."
    assert "unable to open" not in response.content.decode(), "no internals leak"


class SilentLayer:
    """A channel layer whose messages never arrive, as when Redis hangs."""

    async def new_channel(self):
        return "specific.silent!1"

    async def send(self, channel, message):
        return None

    async def receive(self, channel):
        await asyncio.Event().wait()


def test_readyz_when_the_channel_layer_hangs(client, memory_storage, monkeypatch):
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.05)
    monkeypatch.setattr(health, "get_channel_layer", SilentLayer)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"storage": "ok", "channel_layer": "error"}
    assert body["errors"] == [
        {
            "attr": "channel_layer",
            "code": "timeout",
            "detail": "channel_layer did not answer in time",
        }
    ]


def test_readyz_when_the_channel_layer_is_unreachable(client, memory_storage, settings):
    # Port 9 (discard) has no Redis on it: the connection is refused at once.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},
        }
    }
    body = client.get("/readyz").json()
    assert body["status"] == 503
    assert body["checks"]["channel_layer"] == "error"


def test_readyz_reports_both_failures(client, monkeypatch):
    monkeypatch.setattr(fdb_backend, "get_database", lambda: 1 / 0)
    monkeypatch.setattr(health, "get_channel_layer", lambda: None)
    body = client.get("/readyz").json()
    assert body["checks"] == {"storage": "error", "channel_layer": "error"}
    assert [error["attr"] for error in body["errors"]] == ["storage", "channel_layer"]


def test_probes_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v5/schema/").status_code == 301


@pytest.mark.parametrize(
    ("url", "environ", "cluster_file"),
    [
        ("fdb:///srv/fdb/fdb.cluster", {}, "/srv/fdb/fdb.cluster"),
        ("fdb:", {"FDB_CLUSTER_FILE": "/var/fdb/shared.cluster"}, "/var/fdb/shared.cluster"),
        ("fdb:", {}, "/etc/foundationdb/fdb.cluster"),
    ],
)
def test_readyz_reports_the_engine_and_cluster_file(
    client, settings, monkeypatch, url, environ, cluster_file
):
    monkeypatch.delenv("FDB_CLUSTER_FILE", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings.CODITECT_STORAGE_URL = url
    # Whether this machine has libfdb_c or a cluster or not, the body names the engine and
    # the cluster file it was configured with.
    monkeypatch.setattr(health, "CHECKS", {"storage": health.CHECKS["channel_layer"]})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["storage"] == {"engine": "fdb", "cluster_file": cluster_file}


def test_readyz_reports_the_embedded_engine_when_not_ready(client, settings, monkeypatch, tmp_path):
    settings.CODITECT_STORAGE_URL = f"embedded://{tmp_path / 'store.sqlite3'}"

    def broken():
        raise OSError("disk gone")

    monkeypatch.setattr(fdb_backend, "get_database", broken)
    body = client.get("/readyz").json()
    assert body["storage"] == {"engine": "embedded"}
    assert body["checks"]["storage"] == "error"
    fdb_backend.reset_database()


def test_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert "max-age=86400" in response["Cache-Control"]
