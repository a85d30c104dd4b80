// The sessions dashboard (docs/web.md): the tenant's workspace sessions from
// GET /api/v5/sessions (name, path, owner, last active, live connections), create, fork,
// delete, and paging by next_cursor.

import { api, auth, bootSignedIn, byIds, el, onSubmit, Problem, tenantMembers, timeEl } from "../coditect/web.js";

const PAGE_SIZE = 20;
const AUTO_REFRESH_MS = 15_000;
// A delete asks once more on the same button, for this long.
const CONFIRM_MS = 5_000;

const [body, empty, listError, newer, older, pageInfo, ownerFilter] = byIds(
  "sessions-body", "sessions-empty", "list-error", "page-newer", "page-older", "page-info", "owner-filter",
);

const owners = new Map(); // user id -> display name or email
// Cursors of the pages before the current one (the first page's is null).
let cursors = [];
let current = null;
let nextCursor = null;

async function loadOwners() {
  for (const member of await tenantMembers()) {
    owners.set(member.id, member.display_name || member.email);
  }
}

function ownerName(id) {
  if (auth.user && id === auth.user.id) return "you";
  return owners.get(id) ?? id.slice(0, 8);
}

function reportList(error) {
  listError.textContent = error.message;
  listError.hidden = false;
}

async function load(cursor = current) {
  listError.hidden = true;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), owner: ownerFilter.value });
  if (cursor) query.set("cursor", cursor);
  let page;
  try {
    page = await api("GET", `/api/v5/sessions?${query}`);
  } catch (error) {
    reportList(error);
    return;
  }
  current = cursor;
  nextCursor = page.next_cursor;
  render(page.results);
  newer.disabled = cursors.length === 0;
  older.disabled = !nextCursor;
  pageInfo.textContent = `Page ${cursors.length + 1}`;
}

function render(sessions) {
  empty.hidden = sessions.length > 0;
  body.replaceChildren(...sessions.map(row));
}

function row(session) {
  const fork = el("button", { type: "button" }, "Fork");
  fork.addEventListener("click", () => forkSession(session, fork));
  const remove = el("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", () => deleteSession(session, remove));
  const live = session.live_connections ?? 0;
  return el(
    "tr",
    { "data-session": session.id },
    el(
      "td",
      {},
      el("a", { href: `/sessions/${session.id}/`, class: "session-link" }, session.name),
      session.parent_session_id ? el("span", { class: "badge" }, "fork") : null,
    ),
    el("td", {}, el("code", {}, session.workspace_path)),
    el("td", {}, ownerName(session.owner_id)),
    el("td", {}, timeEl(session.last_active_at)),
    el(
      "td",
      { class: "num" },
      el(
        "span",
        { class: live ? "live-count on" : "live-count", "data-live": live, title: `${live} open connection(s)` },
        String(live),
      ),
    ),
    el("td", { class: "actions" }, fork, remove),
  );
}

async function forkSession(session, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/v5/sessions/${session.id}/fork`, {});
    cursors = [];
    await load(null);
  } catch (error) {
    button.disabled = false;
    reportList(error);
  }
}

async function deleteSession(session, button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Confirm delete";
    setTimeout(() => {
      button.dataset.confirm = "";
      button.textContent = "Delete";
    }, CONFIRM_MS);
    return;
  }
  button.disabled = true;
  try {
    await api("DELETE", `/api/v5/sessions/${session.id}`);
    await load();
  } catch (error) {
    button.disabled = false;
    reportList(error);
  }
}

function setUpCreate() {
  const form = document.getElementById("create-form");
  onSubmit(form, async ({ name, workspace_path }) => {
    await api("POST", "/api/v5/sessions", { name, workspace_path });
    form.reset();
    cursors = [];
    await load(null);
  });
}

async function main() {
  const user = await bootSignedIn();
  const tenant = document.getElementById("tenant-name");
  tenant.textContent = auth.tenant ? `${auth.tenant.name} · signed in as ${user.email}` : user.email;
  setUpCreate();
  newer.addEventListener("click", () => load(cursors.pop() ?? null));
  older.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(current);
    load(nextCursor);
  });
  ownerFilter.addEventListener("change", () => {
    cursors = [];
    load(null);
  });
  document.getElementById("list-refresh").addEventListener("click", () => load());
  await loadOwners();
  await load(null);
  // Live counts and activity move on their own; a quiet refresh keeps them current.
  setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, AUTO_REFRESH_MS);
}

main().catch((error) => {
  if (!(error instanceof Problem)) console.error(error);
});
