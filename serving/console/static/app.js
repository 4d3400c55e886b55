// Entry point: sign-in, the hash router and the language switch.
import { api, session, setUnauthorizedHandler } from "./api.js";
import { renderAsk } from "./ask.js";
import { h, nextView, replace } from "./dom.js";
import { renderDocument, renderDocuments } from "./documents.js";
import { describe } from "./errors.js";
import { initialLang, setLang, t } from "./i18n.js";
import { renderPeople } from "./people.js";
import { renderRecords } from "./records.js";
import { renderReleases } from "./releases.js";
import { renderSorting } from "./sorting.js";
import { renderSources } from "./sources.js";
import { renderTraces } from "./traces.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logout = document.getElementById("logout");
let loginMessage = "";
let signingIn = false; // a refused key at sign-in is reported by the form, not as "expired"

function renderLogin() {
  nextView(); // whatever page was loading stops here
  nav.hidden = true;
  logout.hidden = true;
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const error = h("p", { class: "error", role: "alert" }, loginMessage);
  const form = h(
    "form",
    { class: "card login", id: "login" },
    h("h1", {}, t("login.title")),
    h("label", { for: "api-key" }, t("login.key")),
    input,
    h("p", { class: "hint" }, t("login.help")),
    error,
    h("button", { type: "submit", class: "primary" }, t("login.submit")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    session.set(input.value.trim());
    signingIn = true;
    try {
      await api("/v1/collections");
      loginMessage = "";
      if (!location.hash || location.hash === "#/login") location.hash = "#/documents";
      else route();
    } catch (err) {
      session.clear();
      error.textContent = t("login.bad", { detail: describe(err) });
      input.focus();
    } finally {
      signingIn = false;
    }
  });
  replace(main, form, accountSignIn());
  input.focus();
}

// The other ways in, as /v1/auth/providers says: a user name and password (a session token),
// and single sign-on, which comes back as /#sso=<token> (takeSsoFragment).
function accountSignIn() {
  const box = h("div", { class: "card login", id: "account-login" });
  api("/v1/auth/providers")
    .then((providers) => {
      const tenant = h("input", { id: "login-tenant", required: true, autocomplete: "organization", value: providers.sso_tenant || "" });
      const user = h("input", { id: "login-user", required: true, autocomplete: "username" });
      const password = h("input", { id: "login-password", type: "password", required: true, autocomplete: "current-password" });
      const error = h("p", { class: "error", role: "alert" });
      const form = h(
        "form",
        {},
        h("h2", {}, t("login.account")),
        h("label", { for: "login-tenant" }, t("login.tenant")),
        tenant,
        h("label", { for: "login-user" }, t("login.user")),
        user,
        h("label", { for: "login-password" }, t("login.password")),
        password,
        error,
        h("button", { type: "submit" }, t("login.submit")),
      );
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        signingIn = true; // a refused password is said here, not as an expired key
        try {
          const opened = await api("/v1/auth/login", {
            method: "POST",
            json: { tenant: tenant.value.trim(), username: user.value.trim(), password: password.value },
          });
          session.set(opened.token);
          loginMessage = "";
          if (!location.hash || location.hash === "#/login") location.hash = "#/documents";
          else route();
        } catch (err) {
          error.textContent = t("login.refused", { detail: describe(err) });
          password.focus();
        } finally {
          signingIn = false;
        }
      });
      replace(box, form);
      if (providers.sso) {
        box.append(h("a", { class: "button-like", id: "sso", href: "/v1/auth/oidc/login" }, t("login.sso")));
      }
    })
    .catch(() => box.remove()); // an older server: keys only
  return box;
}

// Single sign-on's callback sends the browser to /#sso=<session token> (a fragment: never sent
// to a server, never logged) or /#sso-error=<cause>; the token is kept like a key, the fragment
// is wiped from the address and the history.
function takeSsoFragment() {
  const hash = location.hash;
  if (hash.startsWith("#sso=")) {
    session.set(decodeURIComponent(hash.slice("#sso=".length)));
    history.replaceState(null, "", "#/documents");
  } else if (hash.startsWith("#sso-error=")) {
    loginMessage = t("login.ssoError", { detail: decodeURIComponent(hash.slice("#sso-error=".length)) });
    session.clear();
    history.replaceState(null, "", "#/login");
  }
}

const routes = [
  [/^#\/documents\/([^/]+)$/, (m) => renderDocument(main, decodeURIComponent(m[1]))],
  [
    /^#\/documents\/([^/]+)\/pages\/(\d+)$/,
    (m) => renderDocument(main, decodeURIComponent(m[1]), { page: Number(m[2]) }),
  ],
  [/^#\/documents\/?$/, () => renderDocuments(main)],
  [/^#\/ask\/?$/, () => renderAsk(main)],
  [/^#\/releases\/?$/, () => renderReleases(main)],
  [/^#\/sorting\/?$/, () => renderSorting(main)],
  [/^#\/sources\/?$/, () => renderSources(main)],
  [/^#\/records\/?$/, () => renderRecords(main)],
  [/^#\/traces\/?$/, () => renderTraces(main)],
  [/^#\/people\/?$/, () => renderPeople(main)],
];

// People and access is an administrator's page: its link shows once the caller is known to be one.
const peopleLink = document.getElementById("nav-people");
let knownKey = null;
function showAdminLinks() {
  if (knownKey === session.key) return;
  knownKey = session.key;
  peopleLink.hidden = true;
  api("/v1/auth/me")
    .then((me) => {
      peopleLink.hidden = !me.scopes.includes("admin");
    })
    .catch(() => {});
}

export function route() {
  if (!session.key) {
    renderLogin();
    return;
  }
  nav.hidden = false;
  logout.hidden = false;
  showAdminLinks();
  const hash = location.hash || "#/documents";
  for (const link of nav.querySelectorAll("a")) {
    const current = hash.startsWith(`#/${link.dataset.route}`);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, render] of routes) {
    const m = pattern.exec(hash);
    if (m) {
      Promise.resolve(render(m)).catch((err) => {
        if (err.status === 401) return; // back on the sign-in form already
        replace(main, h("p", { class: "error", role: "alert" }, t("error.generic", { detail: describe(err) })));
      });
      return;
    }
  }
  location.hash = "#/documents";
}

setUnauthorizedHandler(() => {
  if (signingIn) return;
  session.clear();
  loginMessage = t("login.expired");
  renderLogin();
});

const langSelect = document.getElementById("lang");
setLang(initialLang());
langSelect.value = document.documentElement.lang;
langSelect.addEventListener("change", () => {
  setLang(langSelect.value);
  route();
});
logout.addEventListener("click", () => {
  session.clear();
  loginMessage = "";
  location.hash = "";
  renderLogin();
});
window.addEventListener("hashchange", () => {
  takeSsoFragment();
  route();
  main.focus({ preventScroll: true });
});
takeSsoFragment();
route();
