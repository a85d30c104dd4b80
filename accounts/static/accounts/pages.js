// The account pages (docs/web.md): sign in (with a second factor when the account has one),
// register (with an invitation), sign out, and the account page (devices, sign out
// everywhere, password change, email verification, two-step verification); the recovery
// pages live in recovery.js. The page to run is named by [data-page] in the template.

import {
  api,
  auth,
  bootSignedIn,
  el,
  newPasswordValues,
  onSubmit,
  Problem,
  safeNext,
  showErrors,
  timeEl,
  webAuthPost,
} from "../coditect/web.js";
import { auditPage } from "./audit.js";
import {
  forgotPasswordPage,
  mountEmailVerification,
  mountTotp,
  resetPasswordPage,
  verifyEmailPage,
} from "./recovery.js";

const DASHBOARD = "/sessions/";

const REASONS = {
  signed_out: "You have been signed out. Sign in again to continue.",
  account_deleted: "Your account has been deleted.",
};

function showNotice(id, text) {
  const notice = document.getElementById(id);
  if (!notice) return;
  notice.textContent = text;
  notice.hidden = false;
}

// --- sign in ------------------------------------------------------------------------------

async function signinPage(root) {
  const next = safeNext(root.dataset.next);
  const reason = new URLSearchParams(location.search).get("reason");
  if (REASONS[reason]) {
    showNotice("signin-notice", REASONS[reason]);
  } else {
    // Already signed in on this browser: no need to type anything.
    try {
      await auth.refresh();
      location.replace(next);
      return;
    } catch {
      // Not signed in: the form it is.
    }
  }
  const form = document.getElementById("signin-form");
  const mfaForm = document.getElementById("mfa-form");
  let challenge = null;

  onSubmit(
    form,
    async ({ email, password }) => {
      await webAuthPost("login", { email, password });
      location.assign(next);
    },
    (error) => {
      if (error.code !== "mfa_required") return error;
      challenge = error.body.mfa_challenge;
      form.hidden = true;
      mfaForm.hidden = false;
      mfaForm.elements.namedItem("code").focus();
      return null;
    },
  );

  onSubmit(
    mfaForm,
    async ({ code }) => {
      await webAuthPost("login/mfa", { challenge, code });
      location.assign(next);
    },
    (error) => {
      if (error.code !== "invalid_mfa_challenge" && error.code !== "mfa_challenge_expired") {
        return error;
      }
      // The attempt is over: start again from the password.
      mfaForm.hidden = true;
      form.hidden = false;
      showErrors(form, error);
      return null;
    },
  );
}

// --- register -----------------------------------------------------------------------------

async function registerPage() {
  const form = document.getElementById("register-form");
  const invitation = form.elements.namedItem("invitation");
  const team = document.getElementById("register-team");
  // Joining through an invitation means joining its team: no team name to choose.
  const toggleTeam = () => {
    team.hidden = invitation.value.trim() !== "";
  };
  invitation.addEventListener("input", toggleTeam);
  toggleTeam();

  onSubmit(
    form,
    async (values) => {
      const body = { email: values.email, password: values.password };
      if (values.display_name) body.display_name = values.display_name;
      if (values.invitation.trim()) body.invitation = values.invitation.trim();
      else if (values.tenant_name) body.tenant_name = values.tenant_name;
      await webAuthPost("register", body);
      location.assign(DASHBOARD);
    },
    (error) => {
      if (error.code !== "email_not_verified") return error;
      // The account exists; the team wants a confirmed address before the first sign-in.
      form.hidden = true;
      showNotice("register-notice", error.message);
      return null;
    },
  );
}

// --- sign out -----------------------------------------------------------------------------

async function signoutPage() {
  const button = document.getElementById("signout-confirm");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await webAuthPost("logout", {});
      document.getElementById("signout-ask").hidden = true;
      document.getElementById("signout-done").hidden = false;
    } catch (error) {
      const slot = document.getElementById("signout-error");
      slot.textContent = error.message;
      slot.hidden = false;
      button.disabled = false;
    }
  });
}

// --- account ------------------------------------------------------------------------------

function describeAgent(agent) {
  if (!agent) return "Unknown device";
  const browser = /(Firefox|Edg|Chrome|Chromium|Safari)\/[\d.]+/.exec(agent);
  const system = /(Windows|Mac OS X|Android|iPhone|Linux)/.exec(agent);
  if (!browser) return agent.slice(0, 60);
  const name = browser[1] === "Edg" ? "Edge" : browser[1];
  return system ? `${name} on ${system[1].replace("Mac OS X", "macOS")}` : name;
}

async function accountPage() {
  const user = await bootSignedIn();
  document.getElementById("profile-email").textContent = user.email;
  document.getElementById("profile-name").textContent = user.display_name || "—";
  document.getElementById("profile-team").textContent = auth.tenant?.name ?? "—";
  document.getElementById("profile-role").textContent = user.role;
  // The team's audit log is for its owners and admins (the API refuses anyone else).
  document.getElementById("audit-card").hidden = !["owner", "admin"].includes(user.role);

  const body = document.getElementById("devices-body");
  const devicesError = document.getElementById("devices-error");

  function reportDevices(error) {
    devicesError.textContent = error.message;
    devicesError.hidden = false;
  }

  async function signOutDevice(device, button) {
    button.disabled = true;
    try {
      if (device.current) {
        await webAuthPost("logout", {}, auth.access);
        location.assign("/signin/?reason=signed_out");
        return;
      }
      await api("DELETE", `/api/v5/auth/sessions/${device.id}`);
      await loadDevices();
    } catch (error) {
      button.disabled = false;
      reportDevices(error);
    }
  }

  async function loadDevices() {
    devicesError.hidden = true;
    let page;
    try {
      page = await api("GET", "/api/v5/auth/sessions?limit=200");
    } catch (error) {
      reportDevices(error);
      return;
    }
    body.replaceChildren(
      ...page.results.map((device) => {
        const button = el("button", { type: "button" }, "Sign out this device");
        button.addEventListener("click", () => signOutDevice(device, button));
        return el(
          "tr",
          { "data-device": device.id, class: device.current ? "current" : null },
          el(
            "td",
            {},
            el("span", { title: device.user_agent }, describeAgent(device.user_agent)),
            device.current ? el("span", { class: "badge" }, "this device") : null,
          ),
          el("td", {}, device.ip || "—"),
          el("td", {}, timeEl(device.created_at)),
          el("td", {}, timeEl(device.last_used_at)),
          el("td", { class: "actions" }, button),
        );
      }),
    );
  }

  const everywhere = document.getElementById("signout-everywhere");
  everywhere.addEventListener("click", async () => {
    everywhere.disabled = true;
    try {
      await webAuthPost("logout-all", {}, auth.access);
      location.assign("/signin/?reason=signed_out");
    } catch (error) {
      everywhere.disabled = false;
      reportDevices(error);
    }
  });

  const form = document.getElementById("password-form");
  onSubmit(form, async () => {
    document.getElementById("password-done").hidden = true;
    const values = newPasswordValues(form);
    if (!values) return;
    await api("POST", "/api/v5/auth/password", {
      current_password: values.current_password,
      new_password: values.new_password,
    });
    form.reset();
    document.getElementById("password-done").hidden = false;
    await loadDevices();
  });

  await Promise.all([loadDevices(), mountEmailVerification(user), mountTotp(), mountYourData()]);
}

// --- your data: export and erasure (docs/accounts.md "Export and erasure") ---------------

async function mountYourData() {
  const download = document.getElementById("export-download");
  const exportError = document.getElementById("export-error");
  download.addEventListener("click", async () => {
    exportError.hidden = true;
    download.disabled = true;
    try {
      const data = await api("GET", "/api/v5/auth/me/export");
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: "coditect-export.json", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      exportError.textContent = error.message;
      exportError.hidden = false;
    } finally {
      download.disabled = false;
    }
  });

  const form = document.getElementById("erase-form");
  const codeField = document.getElementById("erase-code-field");
  onSubmit(
    form,
    async ({ password, code }) => {
      const body = codeField.hidden || !code ? { password } : { password, code };
      await api("DELETE", "/api/v5/auth/me", body);
      // The account is gone: clear this browser's sign-in cookie (its session is gone too).
      try {
        await webAuthPost("logout", {});
      } catch {
        // Nothing left to sign out.
      }
      auth.access = null;
      location.assign("/signin/?reason=account_deleted");
    },
    (error) => {
      if (error.code === "mfa_code_required") codeField.hidden = false;
      return error;
    },
  );
  try {
    const mfa = await api("GET", "/api/v5/auth/mfa");
    codeField.hidden = !mfa.totp_enabled;
  } catch {
    codeField.hidden = false; // unknown: offer the field, the server says if it is needed
  }
}

// --- start --------------------------------------------------------------------------------

const PAGES = {
  signin: signinPage,
  register: registerPage,
  signout: signoutPage,
  account: accountPage,
  audit: auditPage,
  "verify-email": verifyEmailPage,
  "forgot-password": forgotPasswordPage,
  "reset-password": resetPasswordPage,
};

const root = document.querySelector("[data-page]");
const run = root && PAGES[root.dataset.page];
if (run) {
  run(root).catch((error) => {
    if (!(error instanceof Problem)) console.error(error);
  });
}
