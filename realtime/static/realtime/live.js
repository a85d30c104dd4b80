// The live session page (docs/web.md): presence, state, locks and the event feed of one
// workspace session, kept current by the realtime client (client.js).

import { RealtimeClient } from "./client.js";
import {
  api,
  auth,
  bootSignedIn,
  el,
  fieldProblem,
  formValues,
  onSubmit,
  Problem,
} from "../coditect/web.js";

const root = document.querySelector('[data-page="live"]');
const sessionId = root.dataset.sessionId;
const statusEl = document.getElementById("conn-status");
const problemEl = document.getElementById("live-problem");
const feed = document.getElementById("feed");
const stateForm = document.getElementById("state-form");
const savedEl = document.getElementById("state-saved");

const FEED_MAX = 200;
const HISTORY = 30; // events shown from the log when the page opens
const EVENT_NAME = /^[A-Za-z0-9._:-]{1,100}$/;
const RESERVED = ["state.", "presence.", "lock."];
const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  gone: "Session deleted",
  forbidden: "No access",
  "signed-out": "Signed out",
  closed: "Closed",
};
const STATE_FIELDS = ["active_files", "editor_state", "terminal_state"];

let client = null;

// --- rendering --------------------------------------------------------------------------

function showProblem(text) {
  problemEl.textContent = text;
  problemEl.hidden = false;
}

function setStatus(status, detail = {}) {
  statusEl.dataset.state = status;
  let text = STATUS_TEXT[status] ?? status;
  if (status === "reconnecting" && detail.attempt) text = `Reconnecting… (attempt ${detail.attempt})`;
  statusEl.textContent = text;
  if (client) {
    statusEl.dataset.opened = String(client.counts.opened);
    statusEl.dataset.reauthed = String(client.counts.reauthed);
    statusEl.dataset.seq = String(client.seq);
  }
}

function nameOf(connectionId, userId) {
  if (client && connectionId === client.connectionId) return "you (this tab)";
  const entry = client?.presence.get(connectionId);
  if (entry) return entry.display_name;
  if (auth.user && userId === auth.user.id) return "you (another tab)";
  return userId ? `user ${String(userId).slice(0, 8)}` : "someone";
}

function renderHeader(session) {
  document.getElementById("session-name").textContent = session.name;
  document.getElementById("session-path").textContent = session.workspace_path;
  document.title = `${session.name} · Coditect`;
}

function renderPresence() {
  const entries = [...client.presence.values()].sort((a, b) =>
    (a.display_name || "").localeCompare(b.display_name || ""),
  );
  document.getElementById("presence-count").textContent = String(entries.length);
  document.getElementById("presence-list").replaceChildren(
    ...entries.map((entry) => {
      const mine = entry.connection_id === client.connectionId;
      const name = entry.display_name || "someone";
      return el(
        "li",
        { "data-connection": entry.connection_id, class: mine ? "me" : null },
        el("span", { class: "avatar", "aria-hidden": "true" }, name.slice(0, 1).toUpperCase()),
        el("span", { class: "who-name" }, name),
        mine ? el("span", { class: "badge" }, "this tab") : null,
        !mine && auth.user && entry.user_id === auth.user.id ? el("span", { class: "badge" }, "you") : null,
      );
    }),
  );
}

function lockExpiry(lock) {
  const seconds = Math.round((new Date(lock.expires_at).getTime() - Date.now()) / 1000);
  return seconds > 0 ? `in ${seconds} s` : "expired";
}

function renderLocks() {
  const locks = [...client.locks.values()].sort((a, b) => a.path.localeCompare(b.path));
  document.getElementById("locks-empty").hidden = locks.length > 0;
  document.getElementById("locks-list").replaceChildren(
    ...locks.map((lock) => {
      const mine = lock.holder.connection_id === client.connectionId;
      const actions = [];
      if (mine) {
        const renew = el("button", { type: "button" }, "Renew");
        renew.addEventListener("click", () => lockAction(() => client.lockRenew(lock.path, 60)));
        const release = el("button", { type: "button" }, "Release");
        release.addEventListener("click", () => lockAction(() => client.lockRelease(lock.path)));
        actions.push(renew, release);
      }
      const expires = new Date(lock.expires_at);
      return el(
        "li",
        { "data-lock": lock.path, class: mine ? "mine" : null },
        el("code", { class: "path" }, lock.path),
        el(
          "span",
          { class: "lock-meta" },
          el("span", { class: "holder" }, nameOf(lock.holder.connection_id, lock.holder.user_id)),
          " · expires ",
          el("time", { datetime: lock.expires_at, title: expires.toLocaleString() }, lockExpiry(lock)),
        ),
        actions.length ? el("span", { class: "actions" }, ...actions) : null,
      );
    }),
  );
}

function formatField(name, value) {
  if (name === "active_files") return (value ?? []).join("\n");
  return JSON.stringify(value ?? {}, null, 2);
}

/** Put the session's state in the form, except over edits the person has not saved. */
function renderState(session, { force = false } = {}) {
  document.getElementById("state-version").textContent = `version ${session.version}`;
  for (const name of STATE_FIELDS) {
    const field = stateForm.elements.namedItem(name);
    const text = formatField(name, session[name]);
    const untouched = field.value === (field.dataset.shown ?? "");
    if (force || untouched || field.value === text) {
      field.value = text;
      field.dataset.shown = text;
      delete field.dataset.stale;
    } else if (field.dataset.shown !== text) {
      field.dataset.stale = "1";
      savedEl.textContent = "Someone else changed a field you are editing; saving replaces their change.";
    }
  }
}

function feedEntry(kind, text, seq, data, { old = false } = {}) {
  const item = el(
    "li",
    { "data-seq": seq, "data-kind": kind, class: `feed-${kind.replace(/[^a-z]/g, "-")}` },
    el("span", { class: "seq", title: "sequence number" }, `#${seq}`),
    el("span", { class: "kind" }, kind),
    el("span", { class: "text" }, text),
    data === undefined ? null : el("code", { class: "data" }, JSON.stringify(data)),
    el("time", { datetime: new Date().toISOString() }, new Date().toLocaleTimeString()),
  );
  // Newest first; the history loaded at start goes below whatever arrived live meanwhile.
  if (old) feed.append(item);
  else feed.prepend(item);
  while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
}

/**
 * One feed line per broadcast, from the wire message (or a logged event in its shape). Live
 * lines are not de-duplicated here: the client applies each seq once, and the feed shows it.
 */
function addToFeed(message, options = {}) {
  const who = nameOf(message.origin, message.user_id);
  const add = (kind, text, data) => feedEntry(kind, text, message.seq, data, options);
  switch (message.type) {
    case "event":
      add(message.event, "", message.data);
      break;
    case "state.changed": {
      const by = message.origin ? ` by ${who}` : " (API)";
      add("state", `${Object.keys(message.changes).join(", ")} changed${by} → version ${message.version}`);
      break;
    }
    case "presence.join":
      add("presence", `${message.display_name} joined`);
      break;
    case "presence.leave":
      add("presence", `${message.display_name} left`);
      break;
    case "lock.changed": {
      const holder = message.holder && nameOf(message.holder.connection_id, message.holder.user_id);
      add("lock", holder ? `${message.path} locked by ${holder}` : `${message.path} released`);
      break;
    }
    default:
      break;
  }
}

/** The last few events from the log, so the feed does not start empty. */
async function loadHistory(upTo) {
  const after = Math.max(0, upTo - HISTORY);
  try {
    const page = await api("GET", `/api/v5/sessions/${sessionId}/events?after_seq=${after}&limit=${HISTORY}`);
    const older = page.results.filter((logged) => logged.seq <= upTo).reverse();
    for (const logged of older) addToFeed(wireOf(logged), { old: true });
  } catch {
    // History is a nicety (the log may have been trimmed: 410).
  }
}

function wireOf(logged) {
  const own = ["state.changed", "presence.join", "presence.leave", "lock.changed"];
  if (own.includes(logged.event)) {
    return { type: logged.event, seq: logged.seq, ...logged.data, origin: logged.origin };
  }
  return { type: "event", seq: logged.seq, event: logged.event, data: logged.data, origin: logged.origin };
}

// --- forms --------------------------------------------------------------------------------

function parseObject(name, text) {
  if (!text.trim()) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw fieldProblem(name, `Not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fieldProblem(name, "Must be a JSON object, like {\"key\": \"value\"}.");
  }
  return value;
}

function stateChanges() {
  const values = formValues(stateForm);
  const wanted = {
    active_files: values.active_files
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean),
    editor_state: parseObject("editor_state", values.editor_state),
    terminal_state: parseObject("terminal_state", values.terminal_state),
  };
  const changes = {};
  for (const name of STATE_FIELDS) {
    if (JSON.stringify(wanted[name]) !== JSON.stringify(client.session[name])) changes[name] = wanted[name];
  }
  return changes;
}

function socketProblem(error) {
  if (error instanceof Problem) return error;
  if (error.code === "version_conflict") {
    return new Problem(409, {
      code: error.code,
      detail: `Someone changed this session since you loaded it (it is at version ${error.current_version} now). Your edits are kept: save again to replace theirs.`,
    });
  }
  if (error.code === "lock_held") {
    const holder = error.holder ? nameOf(error.holder.connection_id, error.holder.user_id) : "someone";
    return new Problem(409, {
      code: error.code,
      detail: `Locked by ${holder} until ${new Date(error.expires_at).toLocaleTimeString()}.`,
      errors: [{ attr: "path", code: error.code, detail: `Locked by ${holder}.` }],
    });
  }
  return new Problem(400, { code: error.code, detail: error.message });
}

function setUpForms() {
  onSubmit(
    stateForm,
    async () => {
      savedEl.textContent = "";
      const changes = stateChanges();
      if (!Object.keys(changes).length) {
        savedEl.textContent = "Nothing changed.";
        return;
      }
      const ack = await client.patch(changes);
      for (const name of Object.keys(changes)) {
        const field = stateForm.elements.namedItem(name);
        field.value = formatField(name, changes[name]);
        field.dataset.shown = field.value;
        delete field.dataset.stale;
      }
      savedEl.textContent = `Saved: version ${ack.version}.`;
    },
    socketProblem,
  );

  const eventForm = document.getElementById("event-form");
  onSubmit(
    eventForm,
    async (values) => {
      const name = values.event.trim();
      if (!EVENT_NAME.test(name) || RESERVED.some((prefix) => name.startsWith(prefix))) {
        throw fieldProblem(
          "event",
          "1 to 100 of letters, digits and . _ : -, not starting with state., presence. or lock.",
        );
      }
      let data = null;
      if (values.data.trim()) {
        try {
          data = JSON.parse(values.data);
        } catch (error) {
          throw fieldProblem("data", `Not valid JSON: ${error.message}`);
        }
      }
      await client.publish(name, data);
      eventForm.elements.namedItem("data").value = "";
    },
    socketProblem,
  );

  const lockForm = document.getElementById("lock-form");
  onSubmit(
    lockForm,
    async (values) => {
      const ttl = Number.parseInt(values.ttl_s, 10);
      if (!values.path.trim()) throw fieldProblem("path", "Name the path to lock.");
      if (!(ttl >= 1 && ttl <= 300)) throw fieldProblem("ttl_s", "From 1 to 300 seconds.");
      await client.lockAcquire(values.path.trim(), ttl);
    },
    socketProblem,
  );
}

async function lockAction(work) {
  try {
    await work();
  } catch (error) {
    showProblem(socketProblem(error).message);
  }
}

function disableForms() {
  for (const control of document.querySelectorAll("#live-body button, #live-body input, #live-body textarea")) {
    control.disabled = true;
  }
}

// --- start --------------------------------------------------------------------------------

async function main() {
  await bootSignedIn();
  let session;
  try {
    session = await api("GET", `/api/v5/sessions/${sessionId}`);
  } catch (error) {
    setStatus("closed");
    disableForms();
    showProblem(
      error.status === 404
        ? "Session not found: it does not exist, was deleted, or belongs to another team."
        : error.message,
    );
    document.getElementById("session-name").textContent = "Session not found";
    return;
  }
  renderHeader(session);

  client = new RealtimeClient({
    sessionId,
    token: auth.access,
    expiresIn: Math.max(1, (auth.expiresAt - Date.now()) / 1000),
    // The client stops on a 401/403 (the sign-in is gone); a refused CSRF check is not that.
    refreshToken: () =>
      auth.refresh().catch((error) => {
        if (error.code === "csrf_failed") throw new Problem(0, error.body);
        throw error;
      }),
  });
  // A token the page refreshed for an API call re-authenticates the socket too.
  auth.addEventListener("token", (event) => client.setToken(event.detail.access, event.detail.expires_in));

  client.addEventListener("status", (event) => setStatus(event.detail.status, event.detail));
  client.addEventListener("welcome", (event) => {
    setStatus("open");
    if (event.detail.first) {
      renderHeader(client.session);
      renderState(client.session, { force: true });
      loadHistory(client.seq);
    }
    problemEl.hidden = true;
  });
  client.addEventListener("change", (event) => {
    const { type, message } = event.detail;
    if (message) addToFeed(message);
    if (type === "welcome" || type === "resync" || type === "state.changed") {
      renderHeader(client.session);
      renderState(client.session, { force: type === "resync" });
    }
    renderPresence();
    renderLocks();
    statusEl.dataset.seq = String(client.seq);
  });
  client.addEventListener("reauthenticated", () => setStatus(client.status));
  client.addEventListener("caughtup", (event) => {
    statusEl.dataset.caughtUp = String(event.detail.seq);
  });
  client.addEventListener("gone", () => {
    disableForms();
    showProblem("This session was deleted.");
  });
  client.addEventListener("authlost", () => {
    disableForms();
    showProblem("You have been signed out.");
  });
  client.addEventListener("error", (event) => {
    if (event.detail.code === "forbidden" || event.detail.code === 4403) {
      disableForms();
      showProblem("You may not open this session.");
    }
  });

  setUpForms();
  setInterval(() => {
    if (client.synced) renderLocks();
  }, 1000);
  client.connect();
}

main().catch((error) => {
  if (!(error instanceof Problem)) console.error(error);
});
