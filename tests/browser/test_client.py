"""realtime/static/realtime/client.js in Chromium, against a scripted socket.

The server is replaced by a fake ``WebSocket`` whose messages and closes the test writes, so
every seam is exact: repeats and gaps, a resume across a reconnect with a live event racing
the replay, a resync, token refresh and re-authentication, and the closes that stop it.
(The pages' tests run the same client against a real daphne.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.helpers import BrowserTab

pytestmark = pytest.mark.timeout(60)

# Installs the fake socket and loads the client; every scenario starts from this.
HARNESS = """
async () => {
  const { RealtimeClient } = await import("/static/realtime/client.js");
  const sockets = [];
  class FakeSocket extends EventTarget {
    static OPEN = 1;
    constructor(url, protocols) {
      super();
      this.url = url;
      this.protocols = protocols;
      this.readyState = 1;
      this.sent = [];
      sockets.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code) { this.readyState = 3; this.closedWith = code ?? 1000; }
    push(message) {
      this.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(message) }));
    }
    drop(code) {
      this.readyState = 3;
      this.dispatchEvent(new CloseEvent("close", { code }));
    }
    last(type) { return [...this.sent].reverse().find((m) => m.type === type); }
  }
  window.WebSocket = FakeSocket;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (check, what) => {
    for (let i = 0; i < 200; i += 1) {
      if (check()) return;
      await sleep(10);
    }
    throw new Error("timed out waiting for " + what);
  };
  const welcome = (connection_id, seq, extra = {}) => ({
    type: "welcome", connection_id, seq, version: 1,
    session: { id: "s1", name: "start", editor_state: {}, version: 1 },
    presence: [{ connection_id, user_id: "u1", display_name: "Ann" }], locks: [], ...extra,
  });
  window.harness = { RealtimeClient, sockets, sleep, until, welcome };
}
"""

ORDERING = """
async () => {
  const { RealtimeClient, sockets, sleep, until, welcome } = window.harness;
  const applied = [];
  const client = new RealtimeClient({
    sessionId: "s1", token: "t1", expiresIn: 900,
    refreshToken: async () => ({ access: "t-new", expires_in: 900 }),
    backoffBaseMs: 5, backoffMaxMs: 10,
  });
  client.addEventListener("change", (e) => {
    applied.push(e.detail.message ? e.detail.message.seq : e.detail.type);
  });
  const statuses = [];
  client.addEventListener("status", (e) => statuses.push(e.detail.status));
  client.connect();
  await until(() => sockets.length === 1, "first socket");
  const first = sockets[0];
  const result = { protocols: first.protocols, url: first.url };
  first.push(welcome("c1", 5));
  const changed = (seq, changes, version) => (
    { type: "state.changed", seq, changes, version, origin: "c9" }
  );
  const presence = (type, seq, connection_id, origin) => (
    { type, seq, connection_id, user_id: "u1", display_name: "Ann", origin }
  );
  first.push(changed(6, { name: "six" }, 2));
  first.push(changed(6, { name: "six again" }, 2)); // a repeat
  first.push({ type: "event", seq: 8, event: "build", data: 8, origin: "" }); // a gap
  const resume = first.last("resume");
  result.resumeAfterGap = resume && resume.last_seq;
  first.push({ type: "event", seq: 7, event: "build", data: 7, origin: "" });
  first.push({ type: "event", seq: 8, event: "build", data: 8, origin: "" });
  first.push({ type: "ack", id: resume.id, replayed: 2 });
  result.nameAfterRepeat = client.session.name;

  // The connection drops; the new socket's welcome is newer than the client's state.
  first.drop(1006);
  await until(() => sockets.length === 2, "reconnect");
  const second = sockets[1];
  second.push(welcome("c2", 12));
  const again = second.last("resume");
  result.resumeAfterReconnect = again && again.last_seq;
  // The server's order: an event that went live after the welcome, before the resume was
  // read; then the replay up to the welcome's state; then the ack.
  second.push(presence("presence.join", 13, "c3", "c3"));
  second.push(presence("presence.leave", 9, "c1", ""));
  second.push(changed(10, { editor_state: { line: 10 } }, 3));
  second.push({
    type: "lock.changed", seq: 11, path: "/a", holder: { connection_id: "c2", user_id: "u1" },
    expires_at: "2100-01-01T00:00:00Z", origin: "c2",
  });
  second.push(presence("presence.join", 12, "c2", "c2"));
  second.push({ type: "ack", id: again.id, replayed: 4 });
  result.afterReconnect = {
    seq: client.seq, version: client.version, editor: client.session.editor_state,
    presence: [...client.presence.keys()], locks: [...client.locks.keys()],
    connectionId: client.connectionId,
  };

  // A patch carries the client's version; an error rejects with the server's code.
  const patched = client.patch({ name: "mine" });
  const patch = second.last("state.patch");
  result.patchBase = patch.base_version;
  second.push({ type: "ack", id: patch.id, version: 4, seq: 14 });
  result.patchAck = (await patched).version;
  const refused = client.patch({ name: "stale" })
    .catch((error) => error.code + ":" + error.current_version);
  second.push({
    type: "error", id: second.last("state.patch").id, code: "version_conflict", detail: "no",
    current_version: 9,
  });
  result.patchError = await refused;

  // A gap that a resume does not fill (14 never comes): the client connects anew, and that
  // socket's resume replays from its seq.
  second.push({ type: "event", seq: 15, event: "build", data: 15, origin: "" });
  const gapResume = second.last("resume");
  result.gapResume = gapResume.id !== again.id && gapResume.last_seq;
  second.push({ type: "ack", id: gapResume.id, replayed: 0 });
  await until(() => sockets.length === 3, "a new connection for the gap");
  const third = sockets[2];
  result.secondClosedWith = second.closedWith;
  third.push(welcome("c4", 16));
  const third_resume = third.last("resume");
  result.resumeAfterGap2 = third_resume.last_seq;
  third.push(changed(14, { name: "mine" }, 4));
  third.push({ type: "event", seq: 15, event: "build", data: 15, origin: "" });
  third.push(presence("presence.join", 16, "c4", "c4"));
  third.push({ type: "ack", id: third_resume.id, replayed: 3 });
  result.afterGap = { seq: client.seq, name: client.session.name, held: client.ahead.size };

  // A resync replaces everything.
  third.push({
    type: "resync", seq: 40, version: 9, session: { id: "s1", name: "resynced", version: 9 },
    presence: [], locks: [],
  });
  third.push(changed(41, { name: "after" }, 10));
  result.afterResync = {
    seq: client.seq, name: client.session.name, presence: client.presence.size,
  };

  // 4404: the session is gone; no reconnect follows.
  let gone = false;
  client.addEventListener("gone", () => { gone = true; });
  third.drop(4404);
  await sleep(100);
  result.gone = gone;
  result.socketsAtEnd = sockets.length;
  result.applied = applied;
  result.statuses = statuses;
  result.counts = client.counts;
  return result;
}
"""

TOKENS = """
async () => {
  const { RealtimeClient, sockets, sleep, until, welcome } = window.harness;
  const handedOut = ["t2", "t3"];
  let refreshes = 0;
  const client = new RealtimeClient({
    sessionId: "s1", token: "t1", expiresIn: 0.4,
    refreshToken: async () => {
      refreshes += 1;
      const access = handedOut.shift();
      if (!access) {
        throw Object.assign(new Error("signed out"), { status: 401, code: "session_revoked" });
      }
      return { access, expires_in: 900 };
    },
    backoffBaseMs: 5, backoffMaxMs: 10,
  });
  let lost = null;
  client.addEventListener("authlost", (e) => { lost = e.detail.code; });
  client.connect();
  await until(() => sockets.length === 1, "socket");
  const first = sockets[0];
  first.push(welcome("c1", 1));
  // The token nears expiry: a refresh, then `auth` on the open socket.
  await until(() => first.last("auth"), "auth message");
  const auth = first.last("auth");
  first.push({ type: "ack", id: auth.id });
  await sleep(20);
  const result = {
    reauthToken: auth.token, reauthed: client.counts.reauthed, sockets: sockets.length,
  };
  // Closed as unauthenticated: one refresh, and straight back with the new token.
  first.drop(4401);
  await until(() => sockets.length === 2, "reconnect after 4401");
  result.reconnectProtocols = sockets[1].protocols;
  sockets[1].push(welcome("c2", 3));
  // Closed again, and now the refresh is refused: the client stops for good.
  sockets[1].drop(4401);
  await until(() => lost !== null, "authlost");
  await sleep(100);
  result.lost = lost;
  result.socketsAtEnd = sockets.length;
  result.status = client.status;
  result.refreshes = refreshes;
  return result;
}
"""


@pytest.fixture
def harness(tabs: Any) -> BrowserTab:
    tab: BrowserTab = tabs("client")
    tab.goto("/healthz")  # any page of the origin; the module is imported from /static/
    tab.page.evaluate(HARNESS)
    return tab


def test_each_event_is_applied_once_in_order_across_gaps_reconnects_and_resyncs(
    harness: BrowserTab,
) -> None:
    result = harness.page.evaluate(ORDERING)
    assert result["protocols"] == ["coditect.v5", "bearer.t1"]
    assert result["url"].endswith("/ws/sessions/s1/")
    assert result["resumeAfterGap"] == 6
    assert result["nameAfterRepeat"] == "six"
    assert result["resumeAfterReconnect"] == 8
    assert result["afterReconnect"] == {
        "seq": 13,
        "version": 3,
        "editor": {"line": 10},
        "presence": ["c2", "c3"],
        "locks": ["/a"],
        "connectionId": "c2",
    }
    assert result["patchBase"] == 3
    assert result["patchAck"] == 4
    assert result["patchError"] == "version_conflict:9"
    assert result["gapResume"] == 13
    assert result["secondClosedWith"] == 4000
    assert result["resumeAfterGap2"] == 13
    assert result["afterGap"] == {"seq": 16, "name": "mine", "held": 0}
    assert result["afterResync"] == {"seq": 41, "name": "after", "presence": 0}
    assert result["applied"] == [
        "welcome", 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, "resync", 41
    ]  # fmt: skip
    assert result["gone"] is True
    assert result["socketsAtEnd"] == 3
    assert "reconnecting" in result["statuses"]
    assert result["statuses"][-1] == "gone"
    assert result["counts"]["opened"] == 3
    assert result["counts"]["resumed"] == 4


def test_tokens_are_refreshed_before_expiry_and_a_refused_refresh_stops_the_client(
    harness: BrowserTab,
) -> None:
    result = harness.page.evaluate(TOKENS)
    assert result["reauthToken"] == "t2"
    assert result["reauthed"] == 1
    assert result["sockets"] == 1  # re-authenticated, not reopened
    assert result["reconnectProtocols"] == ["coditect.v5", "bearer.t3"]
    assert result["lost"] == "session_revoked"
    assert result["socketsAtEnd"] == 2
    assert result["status"] == "signed-out"
    assert result["refreshes"] == 3
