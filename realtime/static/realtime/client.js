// The browser client of the workspace-session WebSocket (docs/protocol.md, "The JavaScript
// client"). No dependencies, no build step: an ES module.
//
//   import { RealtimeClient } from "/static/realtime/client.js";
//   const client = new RealtimeClient({
//     sessionId, token, expiresIn,                  // the access token and its lifetime (s)
//     refreshToken: async () => ({ access, expires_in }),   // e.g. POST /web/auth/refresh
//   });
//   client.addEventListener("change", (e) => render(client.snapshot()));
//   client.connect();
//   await client.patch({ editor_state: {...} });
//
// What it guarantees the page:
// * Every broadcast event is applied exactly once and in seq order: repeats are dropped, and
//   an event ahead of a gap is held until the missing ones arrive. After a reconnect it sends
//   `resume {last_seq}` with the last seq it applied and applies the replay, so nothing is
//   missed or applied twice; a `resync` (the log no longer reaches back) replaces its state.
// * It reconnects after any drop with exponential backoff and full jitter, and stops for
//   good only on 4403 (forbidden), 4404 (session gone) or when the sign-in is lost.
// * It refreshes the access token before it expires and re-authenticates the open socket
//   with `auth`, so a socket outlives any one token. A 4401 close gets one refresh and a
//   reconnect; if the refresh is refused, it reports "authlost" and stops.
//
// Events (CustomEvent, details below): "status", "welcome", "change", "state", "presence",
// "locks", "event", "resync", "caughtup", "token", "authlost", "gone", "error".

export const PROTOCOL = "coditect.v5";
const BROADCASTS = new Set([
  "state.changed", "presence.join", "presence.leave", "presence.batch", "lock.changed", "event",
]);
const FATAL = { 4403: "forbidden", 4404: "gone" };
const UNAUTHENTICATED = 4401;

const DEFAULTS = {
  backoffBaseMs: 500,
  backoffMaxMs: 8_000,
  pingEveryMs: 20_000, // the server closes a socket idle for 60 s
  pongTimeoutMs: 10_000,
  refreshMarginMs: 60_000, // capped at a quarter of the token's lifetime
  requestTimeoutMs: 15_000,
};

export class RealtimeClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.sessionId  the workspace session's id
   * @param {string} options.token  a current access token
   * @param {number} options.expiresIn  its lifetime in seconds
   * @param {() => Promise<{access: string, expires_in: number}>} options.refreshToken
   *   a new access token; throw an error with `status` 401 or 403 when the sign-in is gone
   * @param {string} [options.url]  default: ws(s)://<this host>/ws/sessions/<id>/
   */
  constructor(options) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this.sessionId = options.sessionId;
    this.url =
      options.url ??
      `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sessions/${encodeURIComponent(
        options.sessionId,
      )}/`;
    this.refreshToken = options.refreshToken;
    this.token = null;
    this.socketToken = null; // the token the open socket was last authenticated with
    this.tokenExpiresAt = 0;
    this.tokenLifetimeMs = 0;

    // The session as of `seq`, the last broadcast applied.
    this.session = null;
    this.version = 0;
    this.seq = 0;
    this.presence = new Map(); // connection_id -> {connection_id, user_id, display_name, connected_at?}
    this.locks = new Map(); // path -> {path, holder: {connection_id, user_id}, expires_at}
    this.connectionId = null;
    this.synced = false; // a first welcome has been applied
    this.ahead = new Map(); // seq -> broadcast that came before the one after `seq`
    this.gapResumed = false; // a resume was sent for the gap now open

    this.status = "idle";
    this.socket = null;
    this.attempt = 0;
    this.stopped = false;
    this.resuming = false;
    this.nextId = 1;
    this.pending = new Map(); // message id -> {resolve, reject, timer}
    this.timers = { reconnect: null, refresh: null, ping: null, pong: null };
    this.counts = { opened: 0, reauthed: 0, resumed: 0, resynced: 0 };
    this.setToken(options.token, options.expiresIn, { silent: true });
  }

  // --- public API ---------------------------------------------------------------------

  connect() {
    this.stopped = false;
    this.open();
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    this.clearTimers();
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.setStatus("closed");
  }

  /** Adopt a token the page got elsewhere; an open socket is re-authenticated with it. */
  setToken(access, expiresIn, { silent = false } = {}) {
    if (!access || access === this.token) return;
    this.token = access;
    this.tokenLifetimeMs = expiresIn * 1000;
    this.tokenExpiresAt = Date.now() + this.tokenLifetimeMs;
    this.scheduleRefresh();
    if (!silent && this.isOpen()) this.reauthenticate();
  }

  /** Replace top-level fields of the session: resolves with the ack {version, seq}. */
  patch(changes) {
    return this.request({ type: "state.patch", base_version: this.version, changes });
  }

  publish(event, data) {
    return this.request({ type: "event.publish", event, data });
  }

  lockAcquire(path, ttlS = 60) {
    return this.request({ type: "lock.acquire", path, ttl_s: ttlS });
  }

  lockRenew(path, ttlS = 60) {
    return this.request({ type: "lock.renew", path, ttl_s: ttlS });
  }

  lockRelease(path) {
    return this.request({ type: "lock.release", path });
  }

  /** A copy of what the client knows, for rendering. */
  snapshot() {
    return {
      session: this.session ? structuredClone(this.session) : null,
      version: this.version,
      seq: this.seq,
      presence: [...this.presence.values()],
      locks: [...this.locks.values()],
      connectionId: this.connectionId,
      status: this.status,
    };
  }

  isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.status === "open";
  }

  /**
   * Send a client message and wait for its ack. Rejects with an Error carrying the server's
   * `code` (and the error's other fields), or code "disconnected" / "timeout".
   */
  request(message) {
    if (!this.isOpen()) {
      return Promise.reject(Object.assign(new Error("Not connected; retrying."), { code: "disconnected" }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error("No answer from the server."), { code: "timeout" }));
      }, this.options.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ ...message, id });
    });
  }

  // --- connection ---------------------------------------------------------------------

  async open() {
    if (this.stopped) return;
    clearTimeout(this.timers.reconnect);
    this.setStatus(this.synced ? "reconnecting" : "connecting");
    // A tab that slept may wake with a token that is about to expire: renew it first.
    if (Date.now() >= this.refreshDueAt()) {
      const renewed = await this.renewToken();
      if (!renewed) {
        if (!this.stopped) this.scheduleReconnect();
        return;
      }
    }
    let socket;
    try {
      socket = new WebSocket(this.url, [PROTOCOL, `bearer.${this.token}`]);
      this.socketToken = this.token;
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("message", (event) => {
      if (socket === this.socket) this.receive(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (socket === this.socket) this.closed(event.code);
    });
  }

  /** Drop this socket at once and connect again (its late close event is ignored). */
  restart() {
    const dead = this.socket;
    if (!dead) return;
    this.socket = null;
    dead.close(4000);
    this.closed(1006);
  }

  closed(code) {
    this.socket = null;
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
    this.resuming = false;
    for (const [, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(Object.assign(new Error("The connection dropped; retrying."), { code: "disconnected" }));
    }
    this.pending.clear();
    if (this.stopped) return;
    if (FATAL[code]) {
      this.stopped = true;
      this.clearTimers();
      this.setStatus(FATAL[code]);
      this.emit(FATAL[code] === "gone" ? "gone" : "error", { code });
      return;
    }
    if (code === UNAUTHENTICATED) {
      // Expired or revoked: a refresh tells which. Revoked stops here (renewToken reports it).
      this.renewToken().then((renewed) => {
        if (this.stopped) return;
        if (renewed) this.scheduleReconnect(0);
        else this.scheduleReconnect();
      });
      this.setStatus("reconnecting");
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect(delayMs) {
    if (this.stopped) return;
    const { backoffBaseMs, backoffMaxMs } = this.options;
    // Full jitter: a uniformly random wait up to the exponential bound, so tabs that lost
    // one server together do not come back in one wave.
    const bound = Math.min(backoffMaxMs, backoffBaseMs * 2 ** this.attempt);
    const delay = delayMs ?? Math.max(100, Math.random() * bound);
    this.attempt += 1;
    this.setStatus("reconnecting", { attempt: this.attempt, delay_ms: Math.round(delay) });
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this.open(), delay);
  }

  startPing() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (!this.isOpen()) return;
      this.send({ type: "ping" });
      clearTimeout(this.timers.pong);
      // No answer at all: the connection is dead without the browser knowing yet (its close
      // could take minutes). Drop it now; its late close event is ignored.
      this.timers.pong = setTimeout(() => this.restart(), this.options.pongTimeoutMs);
    }, this.options.pingEveryMs);
  }

  // --- tokens -------------------------------------------------------------------------

  refreshDueAt() {
    const margin = Math.min(this.options.refreshMarginMs, this.tokenLifetimeMs / 4);
    return this.tokenExpiresAt - margin;
  }

  scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    if (this.stopped) return;
    const wait = Math.max(0, this.refreshDueAt() - Date.now());
    this.timers.refresh = setTimeout(async () => {
      if (await this.renewToken()) {
        if (this.isOpen()) this.reauthenticate();
      } else if (!this.stopped) {
        // The server may be down: try again soon; the socket reconnects on its own.
        clearTimeout(this.timers.refresh);
        this.timers.refresh = setTimeout(() => this.scheduleRefresh(), 2_000);
      }
    }, wait);
  }

  /** A new token from the page's callback. False when none came; stops when auth is lost. */
  async renewToken() {
    try {
      const pair = await this.refreshToken();
      // The page may have handed this token over already (setToken), which is fine.
      this.setToken(pair.access, pair.expires_in, { silent: true });
      this.emit("token", { expires_in: pair.expires_in });
      return true;
    } catch (error) {
      if (error && (error.status === 401 || error.status === 403)) {
        this.stopped = true;
        this.clearTimers();
        if (this.socket) this.socket.close(1000);
        this.socket = null;
        this.setStatus("signed-out");
        this.emit("authlost", { code: error.code });
      }
      return false;
    }
  }

  async reauthenticate() {
    const token = this.token;
    if (token === this.socketToken) return;
    this.socketToken = token;
    try {
      await this.request({ type: "auth", token });
      this.counts.reauthed += 1;
      this.emit("reauthenticated", {});
    } catch {
      // A refused token closes the socket (4401), which the close handler deals with.
    }
  }

  // --- receiving ----------------------------------------------------------------------

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (!message || typeof message.type !== "string") return;
    clearTimeout(this.timers.pong); // anything at all proves the connection alive
    const type = message.type;
    if (type === "welcome") return this.onWelcome(message);
    if (type === "resync") return this.onResync(message);
    if (type === "ack" || type === "error") return this.onReply(message);
    if (type === "pong") return undefined;
    if (BROADCASTS.has(type)) return this.onBroadcast(message);
    return undefined;
  }

  onWelcome(message) {
    this.connectionId = message.connection_id;
    this.attempt = 0;
    this.gapResumed = false;
    this.counts.opened += 1;
    this.setStatus("open");
    this.startPing();
    if (!this.synced) {
      this.adopt(message);
      this.synced = true;
      this.emit("welcome", { first: true });
      this.emit("change", { type: "welcome" });
      return;
    }
    // Back after a drop: the welcome's state is newer than ours, but the events between are
    // what the page must see (an event feed, presence comings and goings), so ask for them
    // and apply them to our state as of `seq`. The replay ends at the present.
    this.emit("welcome", { first: false });
    this.resume();
  }

  resume() {
    this.resuming = true;
    this.counts.resumed += 1;
    this.request({ type: "resume", last_seq: this.seq })
      .then((ack) => {
        this.resuming = false;
        if (this.ahead.size) {
          this.fillGap(); // the replay did not reach the events held back
          return;
        }
        this.gapResumed = false;
        this.emit("caughtup", { replayed: ack.replayed ?? 0, seq: this.seq });
      })
      .catch(() => {
        this.resuming = false; // a drop mid-resume: the next welcome resumes again
      });
  }

  onResync(message) {
    this.adopt(message);
    this.counts.resynced += 1;
    this.emit("resync", {});
    this.emit("change", { type: "resync" });
    this.drainAhead();
  }

  adopt(message) {
    this.session = message.session;
    this.version = message.version;
    this.seq = message.seq;
    this.presence = new Map(message.presence.map((entry) => [entry.connection_id, entry]));
    this.locks = new Map(message.locks.map((lock) => [lock.path, lock]));
  }

  onReply(message) {
    const waiter = this.pending.get(message.id);
    if (!waiter) {
      if (message.type === "error") this.emit("error", message);
      return;
    }
    this.pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.type === "ack") {
      waiter.resolve(message);
    } else {
      waiter.reject(Object.assign(new Error(message.detail || message.code), message));
    }
  }

  onBroadcast(message) {
    if (!this.synced) return;
    const seq = message.seq;
    if (seq <= this.seq) return; // already applied (the seam of a resume)
    if (seq > this.seq + 1) {
      // Ahead of a gap: held until the missing events come. Right after a reconnect they
      // are in the replay of the resume on its way; otherwise ask for them.
      this.ahead.set(seq, message);
      if (!this.resuming) this.fillGap();
      return;
    }
    this.applyOne(message);
    this.drainAhead();
  }

  applyOne(message) {
    this.apply(message);
    this.seq = message.seq;
    this.emit("change", { type: message.type, message });
  }

  /** Apply the held events that now follow in order; forget those already covered. */
  drainAhead() {
    for (let next = this.ahead.get(this.seq + 1); next; next = this.ahead.get(this.seq + 1)) {
      this.ahead.delete(next.seq);
      this.applyOne(next);
    }
    for (const seq of this.ahead.keys()) if (seq <= this.seq) this.ahead.delete(seq);
  }

  /** A gap on an open socket: a resume first; if that does not fill it, a new connection,
   *  whose resume replays everything after `seq`. */
  fillGap() {
    if (this.resuming) return;
    if (this.gapResumed) {
      this.restart();
      return;
    }
    this.gapResumed = true;
    this.resume();
  }

  apply(message) {
    switch (message.type) {
      case "state.changed":
        this.session = { ...this.session, ...message.changes, version: message.version, seq: message.seq };
        this.version = message.version;
        this.emit("state", { changes: message.changes, version: message.version, origin: message.origin, seq: message.seq });
        break;
      case "presence.join":
        this.presence.set(message.connection_id, {
          connection_id: message.connection_id,
          user_id: message.user_id,
          display_name: message.display_name,
        });
        this.emit("presence", { message });
        break;
      case "presence.leave":
        this.presence.delete(message.connection_id);
        this.emit("presence", { message });
        break;
      case "presence.batch": // a large room's joins and leaves, in order (docs/protocol.md)
        for (const entry of message.connections) {
          if (entry.change === "join") {
            this.presence.set(entry.connection_id, {
              connection_id: entry.connection_id,
              user_id: entry.user_id,
              display_name: entry.display_name,
            });
          } else {
            this.presence.delete(entry.connection_id);
          }
        }
        this.emit("presence", { message });
        break;
      case "lock.changed":
        if (message.holder) {
          this.locks.set(message.path, { path: message.path, holder: message.holder, expires_at: message.expires_at });
        } else {
          this.locks.delete(message.path);
        }
        this.emit("locks", { message });
        break;
      case "event":
        this.emit("event", { message });
        break;
      default:
        break;
    }
  }

  // --- plumbing -----------------------------------------------------------------------

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  setStatus(status, extra = {}) {
    this.status = status;
    this.emit("status", { status, ...extra });
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  clearTimers() {
    clearTimeout(this.timers.reconnect);
    clearTimeout(this.timers.refresh);
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
  }
}
