// Account recovery and the second factor on the web pages (docs/web.md, docs/accounts.md):
// the pages the account mail links to (verify your email, choose a new password), the
// "forgot your password" page, and the account page's email and two-step verification cards.
//
// The mail's token travels in the URL's fragment (#token=...), which the browser never sends
// to a server: the page reads it, drops it from the address bar and the history, and POSTs it.

import {
  api,
  clearErrors,
  el,
  fieldProblem,
  formValues,
  newPasswordValues,
  onSubmit,
  publicApi,
  showErrors,
  timeEl,
} from "../coditect/web.js";

const AUTH = "/api/v5/auth/";
const INCOMPLETE_LINK =
  "This link is incomplete. Open the link from the mail as it is, or ask for a new one.";

/** The token of the URL's fragment (#token=...), removed from the address bar and history. */
function takeFragmentToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  return token.trim();
}

function byId(id) {
  return document.getElementById(id);
}

function say(id, text) {
  const node = byId(id);
  node.textContent = text;
  node.hidden = false;
}

function requireEmail(form) {
  const email = String(formValues(form).email ?? "").trim();
  if (!email) showErrors(form, fieldProblem("email", "Enter your email address."));
  return email;
}

// --- /verify-email#token=... ---------------------------------------------------------------

export async function verifyEmailPage() {
  const token = takeFragmentToken();
  const form = byId("resend-form");
  onSubmit(form, async () => {
    byId("resend-done").hidden = true;
    const email = requireEmail(form);
    if (!email) return;
    // 202 whether or not the address has an account waiting: the page says the same.
    await publicApi("POST", `${AUTH}verify-email/resend`, { email });
    byId("resend-done").hidden = false;
  });

  let failure = token ? null : INCOMPLETE_LINK;
  if (token) {
    try {
      await publicApi("POST", `${AUTH}verify-email`, { token });
    } catch (error) {
      failure = error.message;
    }
  }
  byId("verify-working").hidden = true;
  if (failure) {
    say("verify-error", failure);
    byId("verify-failed").hidden = false;
  } else {
    byId("verify-done").hidden = false;
  }
}

// --- /forgot-password/ ------------------------------------------------------------------------

export async function forgotPasswordPage() {
  const form = byId("forgot-form");
  onSubmit(form, async () => {
    const email = requireEmail(form);
    if (!email) return;
    // Always 202, for known and unknown addresses alike: one message for both.
    await publicApi("POST", `${AUTH}password-reset`, { email });
    form.hidden = true;
    byId("forgot-done").hidden = false;
  });
}

// --- /reset-password#token=... ---------------------------------------------------------------

const BAD_RESET_TOKEN = new Set(["invalid_reset_token", "reset_token_expired"]);

export async function resetPasswordPage() {
  const token = takeFragmentToken();
  const form = byId("reset-form");
  const badLink = (message) => {
    form.hidden = true;
    say("reset-link-error", message);
    byId("reset-bad-link").hidden = false;
  };
  if (!token) {
    badLink(INCOMPLETE_LINK);
    return;
  }
  onSubmit(
    form,
    async () => {
      const values = newPasswordValues(form);
      if (!values) return;
      await publicApi("POST", `${AUTH}password-reset/confirm`, {
        token,
        new_password: values.new_password,
      });
      form.reset();
      form.hidden = true;
      byId("reset-done").hidden = false;
    },
    (error) => {
      // A used, replaced or expired link: no password typed here can help.
      if (BAD_RESET_TOKEN.has(error.code) || error.errors.some((item) => item.attr === "token")) {
        badLink(error.message);
        return null;
      }
      return error;
    },
  );
  form.elements.namedItem("new_password").focus();
}

// --- the account page: is the email verified, and a new verification mail -------------------

export async function mountEmailVerification(user) {
  const label = byId("profile-verified");
  const button = byId("verify-resend");
  const done = byId("verify-resend-done");
  const failed = byId("verify-resend-error");

  function render(verified) {
    label.dataset.verified = verified ? "yes" : "no";
    label.textContent = verified ? "Yes" : "Not yet: follow the link in the mail we sent you.";
    button.hidden = verified;
  }

  button.addEventListener("click", async () => {
    done.hidden = true;
    failed.hidden = true;
    button.disabled = true;
    try {
      await api("POST", `${AUTH}verify-email/resend`);
      say(
        "verify-resend-done",
        `A new verification mail is on its way to ${user.email}. Its link replaces the previous one.`,
      );
    } catch (error) {
      if (error.code === "email_already_verified") render(true);
      else say("verify-resend-error", error.message);
    } finally {
      button.disabled = false;
    }
  });

  render(Boolean(user.email_verified));
  try {
    // The freshest answer: the address may have been verified in another tab meanwhile.
    const me = await api("GET", `${AUTH}me`);
    render(Boolean(me.email_verified));
  } catch (error) {
    say("verify-resend-error", error.message);
  }
}

// --- the account page: two-step verification (TOTP) -----------------------------------------

async function copyText(button, text) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  } catch {
    // No clipboard here (permissions, an insecure origin): the text stays selectable.
  }
}

export async function mountTotp() {
  const status = byId("mfa-status");
  const startForm = byId("totp-start-form");
  const enroll = byId("totp-enroll");
  const confirmForm = byId("totp-confirm-form");
  const secret = byId("totp-secret");
  const uri = byId("totp-uri");
  const codesBox = byId("recovery-show");
  const codesList = byId("recovery-codes");
  const onBox = byId("totp-on");
  const recoveryForm = byId("recovery-form");
  const disableForm = byId("totp-disable-form");
  const panels = { off: startForm, enrolling: enroll, codes: codesBox, on: onBox };
  let shownCodes = [];

  function showPanel(name) {
    for (const [key, node] of Object.entries(panels)) node.hidden = key !== name;
  }

  function render(state) {
    status.dataset.state = state.totp_enabled ? "on" : "off";
    if (state.totp_enabled) {
      const left = state.recovery_codes_left;
      status.replaceChildren(
        "On since ",
        timeEl(state.totp_enabled_at),
        `. ${left} recovery code${left === 1 ? "" : "s"} left.`,
      );
    } else if (state.enrollment_pending) {
      status.textContent = "Off. A setup was started and not finished: start again for a new key.";
    } else {
      status.textContent = "Off. Signing in asks for your password only.";
    }
  }

  /** Read the status; show ``panel``, or the one the status calls for. */
  async function load(panel) {
    byId("mfa-error").hidden = true;
    let state;
    try {
      state = await api("GET", `${AUTH}mfa`);
    } catch (error) {
      say("mfa-error", error.message);
      return;
    }
    render(state);
    showPanel(panel ?? (state.totp_enabled ? "on" : "off"));
  }

  function forgetSecret() {
    secret.textContent = "";
    uri.value = "";
  }

  function showCodes(codes, message) {
    shownCodes = codes;
    codesList.replaceChildren(...codes.map((code) => el("li", {}, el("code", {}, code))));
    say("recovery-notice", message);
    showPanel("codes");
    byId("recovery-saved").focus();
  }

  /** A refusal that means the page's idea of the state is stale: show the real one. */
  async function stale(error) {
    if (!["mfa_already_enabled", "mfa_not_enabled", "mfa_not_enrolling"].includes(error.code)) {
      return false;
    }
    forgetSecret();
    await load();
    say("mfa-error", error.message);
    return true;
  }

  /** What a refusal shows on its form: nothing when the page's state was stale. */
  const unlessStale = async (error) => ((await stale(error)) ? null : error);

  onSubmit(
    startForm,
    async ({ password }) => {
      const started = await api("POST", `${AUTH}mfa/totp`, { password });
      startForm.reset();
      secret.textContent = started.secret;
      uri.value = started.otpauth_uri;
      confirmForm.reset();
      clearErrors(confirmForm);
      showPanel("enrolling");
      confirmForm.elements.namedItem("code").focus();
    },
    unlessStale,
  );

  byId("totp-uri-copy").addEventListener("click", (event) => {
    uri.select();
    copyText(event.currentTarget, uri.value);
  });

  byId("totp-cancel").addEventListener("click", () => {
    forgetSecret();
    load();
  });

  onSubmit(
    confirmForm,
    async (values) => {
      const code = String(values.code).trim();
      const answer = await api("POST", `${AUTH}mfa/totp/confirm`, { code });
      forgetSecret();
      confirmForm.reset();
      showCodes(answer.recovery_codes, "Two-step verification is on. Save your recovery codes now.");
      await load("codes");
    },
    unlessStale,
  );

  byId("recovery-copy").addEventListener("click", (event) => {
    copyText(event.currentTarget, shownCodes.join("\n"));
  });

  byId("recovery-saved").addEventListener("click", () => {
    shownCodes = [];
    codesList.replaceChildren();
    load();
  });

  onSubmit(
    recoveryForm,
    async (values) => {
      const code = String(values.code).trim();
      const answer = await api("POST", `${AUTH}mfa/recovery-codes`, { code });
      recoveryForm.reset();
      showCodes(answer.recovery_codes, "New recovery codes: the previous ones no longer work.");
      await load("codes");
    },
    unlessStale,
  );

  onSubmit(
    disableForm,
    async (values) => {
      const code = String(values.code).trim();
      await api("POST", `${AUTH}mfa/totp/disable`, { password: values.password, code });
      disableForm.reset();
      await load();
    },
    unlessStale,
  );

  await load();
}
