// What every page of the platform shares (docs/web.md): the access token in memory, calls to
// the REST API with it, the cookie sign-in endpoints under /web/auth/ with their CSRF token,
// field errors from problem bodies, and the navigation bar.
//
// The refresh token never reaches this code: it lives in an HttpOnly cookie that only
// /web/auth/ receives. A page gets its access token by POSTing /web/auth/refresh.

const WEB_AUTH = "/web/auth/";
// Refresh this long before the access token expires (and never later than a quarter of its
// lifetime before), so a request or a socket never runs on an expired one.
const REFRESH_MARGIN_MS = 60_000;

let csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// Django's csrftoken cookie (readable by design) holds the current secret, which the header
// may carry as it is. Read at each request: a sign-in in another tab rotates it, and the token
// this page was rendered with would no longer match.
function currentCsrfToken() {
  const found = document.cookie.split("; ").find((item) => item.startsWith("csrftoken="));
  return found ? decodeURIComponent(found.slice("csrftoken=".length)) : csrfToken;
}

/** An error answer of the platform: an RFC 9457 problem body and its HTTP status. */
export class Problem extends Error {
  constructor(status, body) {
    const problem = body && typeof body === "object" ? body : {};
    super(problem.detail || (status ? `The server answered ${status}.` : "The server cannot be reached."));
    this.status = status;
    this.code = problem.code || (status ? `http_${status}` : "network_error");
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.body = problem;
  }
}

async function readJson(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** fetch without the HTTP cache; no answer at all (offline, refused) is Problem 0. */
async function send(path, init) {
  try {
    return await fetch(path, { ...init, cache: "no-store" });
  } catch {
    throw new Problem(0, null);
  }
}

/** An answer's JSON body (null when empty), or its problem for an error status. */
async function answerOf(response) {
  const data = await readJson(response);
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

/** A REST request's init: JSON in and out; ``body`` undefined sends none. */
function restInit(method, headers, body) {
  if (body === undefined) return { method, headers: { ...headers, Accept: "application/json" } };
  return {
    method,
    headers: { ...headers, Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
}

/** POST JSON to one of the cookie endpoints (/web/auth/...), with the CSRF header. */
export async function webAuthPost(name, body = {}, accessToken = null) {
  const headers = { "Content-Type": "application/json", "X-CSRFToken": currentCsrfToken() };
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  const data = await answerOf(
    await send(WEB_AUTH + name, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      credentials: "same-origin",
    }),
  );
  if (data && data.csrf_token) csrfToken = data.csrf_token; // rotated at sign-in
  return data;
}

/**
 * The signed-in user's access token, in memory only. Dispatches "token" ({access, expires_in})
 * after every refresh and "lost" when the sign-in is gone (revoked, expired, signed out).
 */
class Auth extends EventTarget {
  constructor() {
    super();
    this.access = null;
    this.expiresAt = 0;
    this.lifetimeMs = 0;
    this.user = null;
    this.tenant = null;
    this.inflight = null;
  }

  /** Adopt a sign-in answer ({access, expires_in, user, tenant}). */
  adopt(answer) {
    this.access = answer.access;
    this.lifetimeMs = answer.expires_in * 1000;
    this.expiresAt = Date.now() + this.lifetimeMs;
    if (answer.user) this.user = answer.user;
    if (answer.tenant) this.tenant = answer.tenant;
    this.dispatchEvent(
      new CustomEvent("token", { detail: { access: answer.access, expires_in: answer.expires_in } }),
    );
  }

  /** A new access token from the refresh cookie; concurrent callers share one request. */
  refresh() {
    if (!this.inflight) {
      this.inflight = webAuthPost("refresh")
        .then((answer) => {
          this.adopt(answer);
          return { access: answer.access, expires_in: answer.expires_in };
        })
        .catch((error) => {
          // 401: no sign-in any more; 403: a locked account or suspended team. A refused
          // CSRF check says nothing about the sign-in.
          if (error.status === 401 || (error.status === 403 && error.code !== "csrf_failed")) {
            this.lose(error);
          }
          throw error;
        })
        .finally(() => {
          this.inflight = null;
        });
    }
    return this.inflight;
  }

  /** When the current token should be replaced (ms since the epoch). */
  refreshDueAt() {
    const margin = Math.min(REFRESH_MARGIN_MS, this.lifetimeMs / 4);
    return this.expiresAt - margin;
  }

  /** A token good for a while yet: the current one, or a refreshed one. */
  async token() {
    if (!this.access || Date.now() >= this.refreshDueAt()) await this.refresh();
    return this.access;
  }

  lose(error) {
    this.access = null;
    this.dispatchEvent(new CustomEvent("lost", { detail: { code: error?.code } }));
  }
}

export const auth = new Auth();

/** Call the REST API with the access token; one refresh and retry on a 401. */
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt += 1) {
    const token = await auth.token();
    const response = await send(path, restInit(method, { Authorization: `Bearer ${token}` }, body));
    if (response.status === 401 && attempt === 0) {
      await auth.refresh();
      continue;
    }
    return answerOf(response);
  }
}

/** Call a REST endpoint that needs no sign-in (verify-email, password reset): no token. */
export async function publicApi(method, path, body) {
  return answerOf(await send(path, { ...restInit(method, {}, body), credentials: "omit" }));
}

/**
 * The tenant's members (the first 200), to put names to the user ids a page lists. None
 * when the request fails: the names are a nicety, and the page still shows the ids.
 */
export async function tenantMembers() {
  try {
    return (await api("GET", "/api/v5/tenant/members/?limit=200")).results;
  } catch {
    return [];
  }
}

// --- navigation ---------------------------------------------------------------------------

export function signInUrl(reason) {
  const here = location.pathname + location.search;
  const query = new URLSearchParams({ next: here });
  if (reason) query.set("reason", reason);
  return `/signin/?${query}`;
}

/** Where ?next= may send the browser: a path on this site, never another origin. */
export function safeNext(value, fallback = "/sessions/") {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")) return fallback;
  if (value.includes("\\")) return fallback;
  return value;
}

/**
 * Start a page that needs a signed-in user: get an access token from the cookie (or go to
 * sign-in), fill the navigation bar, and leave for sign-in whenever the sign-in is lost.
 */
export async function bootSignedIn() {
  try {
    await auth.refresh();
  } catch (error) {
    if (error.status !== 401 && error.status !== 403) {
      showPageError(error);
      throw error;
    }
    location.replace(signInUrl());
    throw error;
  }
  auth.addEventListener("lost", () => location.assign(signInUrl("signed_out")));
  const who = document.getElementById("whoami");
  if (who && auth.user) who.textContent = auth.user.display_name || auth.user.email;
  document.getElementById("nav-signout")?.addEventListener("click", signOut);
  document.getElementById("main")?.setAttribute("data-ready", "");
  return auth.user;
}

export async function signOut() {
  try {
    await webAuthPost("logout", {}, auth.access);
  } catch (error) {
    showPageError(error);
    return;
  }
  auth.access = null;
  location.assign("/signin/?reason=signed_out");
}

function showPageError(error) {
  const main = document.getElementById("main");
  if (!main) return;
  const note = el("p", { class: "notice error", role: "alert" }, error.message);
  main.prepend(note);
  main.setAttribute("data-ready", "");
}

// --- forms --------------------------------------------------------------------------------

export function clearErrors(form) {
  for (const node of form.querySelectorAll("[data-error-for]")) {
    node.textContent = "";
    node.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Show a refusal next to the fields it names (errors[].attr), the rest above the button. */
export function showErrors(form, error) {
  clearErrors(form);
  const general = [];
  const errors = error instanceof Problem ? error.errors : [];
  for (const item of errors) {
    const attr = String(item.attr ?? "").split(".")[0];
    const slot = attr && form.querySelector(`[data-error-for="${CSS.escape(attr)}"]`);
    if (slot) {
      slot.textContent = slot.textContent ? `${slot.textContent} ${item.detail}` : item.detail;
      slot.hidden = false;
      form.elements.namedItem(attr)?.setAttribute?.("aria-invalid", "true");
    } else {
      general.push(item.detail);
    }
  }
  if (!errors.length || general.length) {
    const slot = form.querySelector('[data-error-for=""]');
    if (slot) {
      slot.textContent = general.length ? general.join(" ") : error.message;
      slot.hidden = false;
    }
  }
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

/** A one-field error raised by the page itself (bad JSON, passwords that differ). */
export function fieldProblem(attr, detail) {
  return new Problem(400, { code: "invalid", detail, errors: [{ attr, code: "invalid", detail }] });
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** A form that sets a new password: its values, or null (shown on the form) when its two
 * new passwords differ. */
export function newPasswordValues(form) {
  const values = formValues(form);
  if (values.new_password !== values.confirm_password) {
    showErrors(form, fieldProblem("confirm_password", "The two new passwords differ."));
    return null;
  }
  return values;
}

/** Disable the form's buttons while ``work`` runs. */
export async function busy(form, work) {
  const buttons = form.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  try {
    return await work();
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

/** Every form's submit, in one place: the page stays, the form's old errors go, and
 * ``submit(values)`` runs with its buttons disabled (no second submit meanwhile). What it
 * throws is shown on the form once ``explain`` has made it the Problem to show; ``explain``
 * returns null when it dealt with the error itself (another form, a notice). */
export function onSubmit(form, submit, explain = (error) => error) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      await busy(form, () => submit(formValues(form)));
    } catch (error) {
      const problem = await explain(error);
      if (problem) showErrors(form, problem);
    }
  });
}

// --- small DOM and time helpers ------------------------------------------------------------

/** The page's elements of these ids, in order: const [a, b] = byIds("a", "b"). */
export function byIds(...ids) {
  return ids.map((id) => document.getElementById(id));
}

/** el("a", {href: "/x", class: "y"}, "text", child, ...) */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

export function ago(iso) {
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds <= 0 ? "just now" : relative.format(seconds, "second");
  if (abs < 2700) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 64800) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

/** A <time> element showing "5 minutes ago" with the exact time on hover. */
export function timeEl(iso) {
  if (!iso) return el("span", { class: "muted" }, "—");
  const exact = new Date(iso).toLocaleString();
  return el("time", { datetime: iso, title: exact }, ago(iso));
}
