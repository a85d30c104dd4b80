// The audit log page (docs/web.md): the team's auth events and the support staff's actions
// on it, from GET /api/v5/tenant/audit, newest first; "Older entries" follows next_cursor.
// Owners and admins only: the API refuses anyone else, and the page says so.

import { api, bootSignedIn, byIds, el, Problem, tenantMembers, timeEl } from "../coditect/web.js";

const PAGE_SIZE = 50;

function details(entry) {
  const data = entry.data || {};
  if (entry.source === "staff") {
    return `Support: ${data.reason ?? ""}`;
  }
  return Object.entries(data)
    .map(([name, value]) => `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
}

export async function auditPage() {
  await bootSignedIn();
  const [body, more, empty, error, filter, member] = byIds(
    "audit-body", "audit-more", "audit-empty", "audit-error", "audit-filter", "audit-member",
  );
  const names = new Map();
  let query = new URLSearchParams();
  let cursor = null;

  function report(problem) {
    error.textContent =
      problem instanceof Problem && problem.status === 403
        ? "Only the team's owners and admins can see its audit log."
        : problem.message;
    error.hidden = false;
  }

  function row(entry) {
    const who = entry.user_id ? names.get(entry.user_id) || entry.user_id : "—";
    return el(
      "tr",
      { "data-entry": entry.id, "data-source": entry.source },
      el("td", {}, timeEl(entry.at)),
      el(
        "td",
        {},
        el("code", {}, entry.kind),
        entry.source === "staff" ? el("span", { class: "badge" }, "support") : null,
      ),
      el("td", {}, who),
      el("td", { title: entry.user_agent || "" }, entry.ip || "—"),
      el("td", {}, details(entry)),
    );
  }

  async function load(reset) {
    error.hidden = true;
    const params = new URLSearchParams(query);
    params.set("limit", String(PAGE_SIZE));
    if (!reset && cursor) params.set("cursor", cursor);
    let page;
    try {
      page = await api("GET", `/api/v5/tenant/audit?${params}`);
    } catch (problem) {
      report(problem);
      return;
    }
    const rows = page.results.map(row);
    if (reset) body.replaceChildren(...rows);
    else body.append(...rows);
    cursor = page.next_cursor;
    more.hidden = cursor === null;
    empty.hidden = body.children.length > 0;
  }

  async function loadMembers() {
    for (const person of await tenantMembers()) {
      names.set(person.id, person.email);
      member.append(el("option", { value: person.id }, person.email));
    }
  }

  filter.addEventListener("submit", async (event) => {
    event.preventDefault();
    query = new URLSearchParams();
    if (member.value) query.set("user_id", member.value);
    const kind = document.getElementById("audit-kind").value.trim();
    if (kind) query.set("kind", kind);
    cursor = null;
    await load(true);
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    await load(false);
    more.disabled = false;
  });

  await loadMembers();
  await load(true);
}
