// People and access (administrators): the tenant's users (create, roles, disable), its groups
// and their members, a collection's access list, and the audit trail (filter, verify the hash
// chain, export). The document page uses accessCard for a document's own list. Its labels live
// here, in French and English (tests/unit/test_people_console.py checks both have every label).
import { api, download } from "./api.js";
import { h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe } from "./errors.js";
import { formatDate, formatNumber, getLang } from "./i18n.js";

const LABELS = {
  en: {
    title: "People and access",
    intro: "Users, groups, who may read each collection, and the audit trail.",
    loadFailed: "This page could not be loaded: {detail}",
    users: "Users",
    groups: "Groups",
    access: "Access to a collection",
    audit: "Audit trail",
    "col.user": "User",
    "col.roles": "Roles",
    "col.signIn": "Sign-in",
    "col.state": "State",
    "col.actions": "Actions",
    "col.group": "Group",
    "col.members": "Members",
    "col.at": "When",
    "col.actor": "Who",
    "col.action": "Action",
    "col.target": "Target",
    "col.outcome": "Outcome",
    "col.from": "From",
    password: "password",
    sso: "single sign-on",
    keysOnly: "keys only",
    active: "active",
    disabled: "disabled",
    disable: "Disable",
    enable: "Enable",
    userDisabled: "{name} is disabled: its keys and sessions are refused.",
    userEnabled: "{name} is enabled again.",
    username: "Username",
    newPassword: "Password",
    role: "Role",
    addUser: "Add the user",
    userAdded: "{name} added.",
    groupName: "Group name",
    addGroup: "Add the group",
    groupAdded: "Group {name} added.",
    editMembers: "Members…",
    saveMembers: "Save the members",
    membersSaved: "Members of {name} saved.",
    none: "none",
    collection: "Collection",
    everyone: "everyone",
    principal: "Who",
    permission: "Permission",
    "perm.read": "read",
    "perm.write": "write",
    "perm.manage": "manage",
    addEntry: "Add an entry",
    remove: "Remove",
    saveAccess: "Save the access list",
    accessSaved: "Access list saved.",
    open: "Open to everyone in the tenant (no list).",
    inherit: "Also grant what the collection's list grants",
    documentAccess: "Access to this document",
    effective: "Who may read it now: {who}",
    filterActor: "Who",
    filterAction: "Action (document.* for a family)",
    filter: "Filter",
    verify: "Verify the chain",
    verified: "Chain intact: {n} entries verified.",
    broken: "Chain broken at entry {seq}: {reason}",
    exportJsonl: "Export (JSON lines)",
    exportCsv: "Export (CSV)",
    noEntries: "No entry matches.",
  },
  fr: {
    title: "Personnes et accès",
    intro: "Utilisateurs, groupes, qui peut lire chaque collection, et la piste d'audit.",
    loadFailed: "Cette page n'a pas pu être chargée : {detail}",
    users: "Utilisateurs",
    groups: "Groupes",
    access: "Accès à une collection",
    audit: "Piste d'audit",
    "col.user": "Utilisateur",
    "col.roles": "Rôles",
    "col.signIn": "Connexion",
    "col.state": "État",
    "col.actions": "Actions",
    "col.group": "Groupe",
    "col.members": "Membres",
    "col.at": "Quand",
    "col.actor": "Qui",
    "col.action": "Action",
    "col.target": "Cible",
    "col.outcome": "Résultat",
    "col.from": "Depuis",
    password: "mot de passe",
    sso: "authentification unique",
    keysOnly: "clés seulement",
    active: "actif",
    disabled: "désactivé",
    disable: "Désactiver",
    enable: "Réactiver",
    userDisabled: "{name} est désactivé : ses clés et sessions sont refusées.",
    userEnabled: "{name} est de nouveau actif.",
    username: "Identifiant",
    newPassword: "Mot de passe",
    role: "Rôle",
    addUser: "Ajouter l'utilisateur",
    userAdded: "{name} ajouté.",
    groupName: "Nom du groupe",
    addGroup: "Ajouter le groupe",
    groupAdded: "Groupe {name} ajouté.",
    editMembers: "Membres…",
    saveMembers: "Enregistrer les membres",
    membersSaved: "Membres de {name} enregistrés.",
    none: "aucun",
    collection: "Collection",
    everyone: "tout le monde",
    principal: "Qui",
    permission: "Droit",
    "perm.read": "lecture",
    "perm.write": "écriture",
    "perm.manage": "gestion",
    addEntry: "Ajouter une entrée",
    remove: "Retirer",
    saveAccess: "Enregistrer la liste d'accès",
    accessSaved: "Liste d'accès enregistrée.",
    open: "Ouverte à tout le locataire (pas de liste).",
    inherit: "Accorder aussi ce qu'accorde la liste de la collection",
    documentAccess: "Accès à ce document",
    effective: "Qui peut le lire maintenant : {who}",
    filterActor: "Qui",
    filterAction: "Action (document.* pour une famille)",
    filter: "Filtrer",
    verify: "Vérifier la chaîne",
    verified: "Chaîne intacte : {n} entrées vérifiées.",
    broken: "Chaîne rompue à l'entrée {seq} : {reason}",
    exportJsonl: "Exporter (JSON lines)",
    exportCsv: "Exporter (CSV)",
    noEntries: "Aucune entrée ne correspond.",
  },
};

function tr(key, vars = {}) {
  const text = LABELS[getLang()]?.[key] ?? LABELS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

const ROLES = ["reader", "editor", "admin", "promoter"];
const PERMISSIONS = ["read", "write", "manage"];

async function attempt(call, message) {
  try {
    const result = await call();
    if (message) toast(message);
    return result;
  } catch (err) {
    toast(describe(err), "error");
    return undefined;
  }
}

function field(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export async function renderPeople(main) {
  const current = nextView();
  replace(main, h("h1", {}, tr("title")), h("p", { class: "hint" }, "…"));
  let users;
  let groups;
  let collections;
  try {
    [users, groups, collections] = await Promise.all([api("/v1/users"), api("/v1/groups"), api("/v1/collections")]);
  } catch (err) {
    if (!isCurrent(current)) return;
    replace(main, h("h1", {}, tr("title")), h("p", { class: "error", role: "alert", id: "people-state" }, tr("loadFailed", { detail: describe(err) })));
    return;
  }
  if (!isCurrent(current)) return;
  users = users.items ?? users;
  groups = groups.items ?? groups;
  const redraw = () => isCurrent(current) && renderPeople(main);
  replace(
    main,
    h("h1", {}, tr("title")),
    h("p", { class: "hint" }, tr("intro")),
    usersCard(users, redraw),
    groupsCard(groups, users, redraw),
    collectionAccess(collections, users, groups),
    auditCard(),
  );
}

// -- users --------------------------------------------------------------------------------------

function usersCard(users, redraw) {
  const username = h("input", { required: true, autocomplete: "off" });
  const password = h("input", { type: "password", autocomplete: "new-password" });
  const role = h("select", {}, ROLES.map((r) => h("option", { value: r }, r)));
  const form = h(
    "form",
    { class: "row", id: "new-user" },
    field("new-username", tr("username"), username),
    field("new-password", tr("newPassword"), password),
    field("new-role", tr("role"), role),
    h("button", { type: "submit", class: "primary" }, tr("addUser")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { username: username.value.trim(), roles: [role.value] };
    if (password.value) body.password = password.value;
    const made = await attempt(() => api("/v1/users", { method: "POST", json: body }), tr("userAdded", { name: body.username }));
    if (made) redraw();
  });
  return h(
    "section",
    { class: "card" },
    h("h2", {}, tr("users")),
    h(
      "table",
      { class: "list", id: "users" },
      h("thead", {}, h("tr", {}, ["col.user", "col.roles", "col.signIn", "col.state", "col.actions"].map((k) => h("th", { scope: "col" }, tr(k))))),
      h("tbody", {}, users.map((u) => userRow(u, redraw))),
    ),
    form,
  );
}

function userRow(u, redraw) {
  const ways = [u.has_password ? tr("password") : null, u.sso ? tr("sso") : null].filter(Boolean);
  const toggle = h("button", { type: "button", dataset: { action: u.disabled ? "enable" : "disable" } }, u.disabled ? tr("enable") : tr("disable"));
  toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    const done = await attempt(
      () => api(`/v1/users/${encodeURIComponent(u.id)}`, { method: "PATCH", json: { disabled: !u.disabled } }),
      tr(u.disabled ? "userEnabled" : "userDisabled", { name: u.username }),
    );
    if (done) redraw();
    else toggle.disabled = false;
  });
  return h(
    "tr",
    { dataset: { user: u.username } },
    h("td", {}, h("strong", {}, u.username), u.display_name ? [h("br"), h("span", { class: "hint" }, u.display_name)] : null),
    h("td", { class: "roles" }, u.roles.join(", ") || tr("none")),
    h("td", {}, ways.join(", ") || tr("keysOnly")),
    h("td", { class: "state" }, u.disabled ? tr("disabled") : tr("active")),
    h("td", {}, toggle),
  );
}

// -- groups -------------------------------------------------------------------------------------

function groupsCard(groups, users, redraw) {
  const names = new Map(users.map((u) => [u.id, u.username]));
  const name = h("input", { required: true, autocomplete: "off" });
  const form = h("form", { class: "row", id: "new-group" }, field("new-group-name", tr("groupName"), name), h("button", { type: "submit", class: "primary" }, tr("addGroup")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const made = await attempt(() => api("/v1/groups", { method: "POST", json: { name: name.value.trim() } }), tr("groupAdded", { name: name.value.trim() }));
    if (made) redraw();
  });
  return h(
    "section",
    { class: "card" },
    h("h2", {}, tr("groups")),
    h(
      "table",
      { class: "list", id: "groups" },
      h("thead", {}, h("tr", {}, ["col.group", "col.members", "col.actions"].map((k) => h("th", { scope: "col" }, tr(k))))),
      h(
        "tbody",
        {},
        groups.map((g) => {
          const editor = h("td", { colspan: 3, class: "members-editor" });
          const editRow = h("tr", { hidden: true }, editor);
          const edit = h("button", { type: "button", dataset: { action: "members" } }, tr("editMembers"));
          edit.addEventListener("click", () => {
            editRow.hidden = !editRow.hidden;
            if (!editRow.hidden) replace(editor, membersForm(g, users, redraw));
          });
          return [
            h(
              "tr",
              { dataset: { group: g.name } },
              h("td", {}, h("strong", {}, g.name), g.origin === "sso" ? h("span", { class: "hint" }, ` (${tr("sso")})`) : null),
              h("td", { class: "members" }, g.member_ids.map((id) => names.get(id) || id).sort().join(", ") || tr("none")),
              h("td", {}, edit),
            ),
            editRow,
          ];
        }),
      ),
    ),
    form,
  );
}

function membersForm(group, users, redraw) {
  const boxes = users.map((u) => {
    const box = h("input", { type: "checkbox", value: u.id, id: `member-${group.id}-${u.id}` });
    box.checked = group.member_ids.includes(u.id);
    return h("label", { class: "check" }, box, ` ${u.username}`);
  });
  const form = h("form", { class: "members-form" }, boxes, h("button", { type: "submit", class: "primary" }, tr("saveMembers")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const ids = [...form.querySelectorAll("input:checked")].map((b) => b.value);
    const done = await attempt(
      () => api(`/v1/groups/${encodeURIComponent(group.id)}/members`, { method: "PUT", json: { user_ids: ids } }),
      tr("membersSaved", { name: group.name }),
    );
    if (done) redraw();
  });
  return form;
}

// -- access lists ------------------------------------------------------------------------------

/** Who may be named in an entry: everyone, each user, each group (their API names). */
function principalsOf(users, groups) {
  return [
    { value: "everyone", label: tr("everyone") },
    ...users.map((u) => ({ value: `user:${u.id}`, label: `${u.username}` })),
    ...groups.map((g) => ({ value: `group:${g.id}`, label: `${tr("col.group")} ${g.name}` })),
  ];
}

function describeEntries(entries, principals) {
  const named = new Map(principals.map((p) => [p.value, p.label]));
  return entries.map((e) => `${named.get(e.principal) || e.principal} (${tr(`perm.${e.permission}`)})`).join(", ");
}

/** An editable access list: rows of who and what, add, remove, save (PUT ``path``). */
export function accessEditor(path, listed, principals, { onSaved, withInherit = false } = {}) {
  const rows = h("tbody", {});
  function addRow(entry = { principal: "everyone", permission: "read" }) {
    const who = h("select", { class: "principal", "aria-label": tr("principal") }, principals.map((p) => h("option", { value: p.value }, p.label)));
    if (!principals.some((p) => p.value === entry.principal)) who.append(h("option", { value: entry.principal }, entry.principal));
    who.value = entry.principal;
    const what = h("select", { class: "permission", "aria-label": tr("permission") }, PERMISSIONS.map((p) => h("option", { value: p }, tr(`perm.${p}`))));
    what.value = entry.permission;
    const row = h("tr", {}, h("td", {}, who), h("td", {}, what));
    row.append(h("td", {}, h("button", { type: "button", onclick: () => row.remove() }, tr("remove"))));
    rows.append(row);
  }
  for (const entry of listed.entries) addRow(entry);
  const inherit = h("input", { type: "checkbox", id: "access-inherit" });
  inherit.checked = listed.inherit;
  const form = h(
    "form",
    { class: "access-editor" },
    h("table", { class: "list access-entries" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, tr("principal")), h("th", { scope: "col" }, tr("permission")), h("th"))), rows),
    listed.entries.length ? null : h("p", { class: "hint" }, tr("open")),
    withInherit ? h("label", { class: "check" }, inherit, ` ${tr("inherit")}`) : null,
    h("div", { class: "row" }, h("button", { type: "button", class: "add-entry", onclick: () => addRow() }, tr("addEntry")), h("button", { type: "submit", class: "primary" }, tr("saveAccess"))),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const entries = [...rows.children].map((r) => ({ principal: r.querySelector(".principal").value, permission: r.querySelector(".permission").value }));
    const body = withInherit ? { entries, inherit: inherit.checked } : { entries };
    const saved = await attempt(() => api(path, { method: "PUT", json: body }), tr("accessSaved"));
    if (saved && onSaved) onSaved(saved);
  });
  return form;
}

function collectionAccess(collections, users, groups) {
  const principals = principalsOf(users, groups);
  const choose = h("select", {}, collections.map((c) => h("option", { value: c.name }, c.name)));
  const body = h("div", { id: "collection-access" });
  async function show() {
    if (!choose.value) return;
    const path = `/v1/collections/${encodeURIComponent(choose.value)}/access`;
    try {
      const listed = await api(path);
      replace(body, accessEditor(path, listed, principals, { onSaved: show }));
    } catch (err) {
      replace(body, h("p", { class: "error", role: "alert" }, describe(err)));
    }
  }
  choose.addEventListener("change", show);
  show();
  return h("section", { class: "card" }, h("h2", {}, tr("access")), field("access-collection", tr("collection"), choose), body);
}

/** A document's own list, for the document page (shown to those who may manage it). */
export function accessCard(documentId) {
  const card = h("section", { class: "card", id: "document-access", hidden: true });
  const path = `/v1/documents/${encodeURIComponent(documentId)}/access`;
  async function show() {
    try {
      const listed = await api(path);
      if (listed.caller_may !== "manage") return;
      const [users, groups] = await Promise.all([api("/v1/users").catch(() => []), api("/v1/groups").catch(() => [])]);
      const principals = principalsOf(users.items ?? users, groups.items ?? groups);
      card.hidden = false;
      replace(
        card,
        h("h2", {}, tr("documentAccess")),
        h("p", { class: "hint", id: "effective-access" }, tr("effective", { who: describeEntries(listed.effective, principals) || tr("everyone") })),
        accessEditor(path, listed, principals, { withInherit: true, onSaved: show }),
      );
    } catch {
      // not allowed to see its list: the card stays hidden
    }
  }
  show();
  return card;
}

// -- the audit trail --------------------------------------------------------------------------

function auditCard() {
  const actor = h("input", { autocomplete: "off" });
  const action = h("input", { autocomplete: "off" });
  const rows = h("tbody", {});
  const state = h("p", { id: "audit-verify", "aria-live": "polite" });
  function query() {
    const params = new URLSearchParams();
    if (actor.value.trim()) params.set("actor", actor.value.trim());
    if (action.value.trim()) params.set("action", action.value.trim());
    return params;
  }
  async function load() {
    const params = query();
    params.set("limit", "100");
    try {
      const entries = await api(`/v1/audit?${params}`);
      replace(
        rows,
        entries.length
          ? entries.map((e) =>
              h(
                "tr",
                { dataset: { action: e.action, outcome: e.outcome } },
                h("td", {}, formatDate(e.at)),
                h("td", {}, e.actor),
                h("td", {}, h("code", {}, e.action)),
                h("td", { class: "target" }, e.target),
                h("td", {}, e.outcome),
                h("td", {}, [e.source, e.via].filter(Boolean).join(" · ")),
              ),
            )
          : h("tr", {}, h("td", { colspan: 6, class: "empty" }, tr("noEntries"))),
      );
    } catch (err) {
      replace(rows, h("tr", {}, h("td", { colspan: 6, class: "error" }, describe(err))));
    }
  }
  const form = h(
    "form",
    { class: "row", id: "audit-filter" },
    field("audit-actor", tr("filterActor"), actor),
    field("audit-action", tr("filterAction"), action),
    h("button", { type: "submit" }, tr("filter")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  const verify = h("button", { type: "button", id: "verify-audit" }, tr("verify"));
  verify.addEventListener("click", async () => {
    const report = await attempt(() => api("/v1/audit/verify"));
    if (!report) return;
    state.className = report.ok ? "ok" : "error";
    state.textContent = report.ok
      ? tr("verified", { n: formatNumber(report.entries) })
      : report.breaks.map((b) => tr("broken", { seq: b.seq, reason: b.reason })).join(" ");
  });
  const exports = ["jsonl", "csv"].map((format) =>
    h(
      "button",
      {
        type: "button",
        dataset: { export: format },
        onclick: () => {
          const params = query();
          params.set("format", format);
          download(`/v1/audit/export?${params}`, `audit.${format}`).catch((err) => toast(describe(err), "error"));
        },
      },
      tr(format === "jsonl" ? "exportJsonl" : "exportCsv"),
    ),
  );
  load();
  return h(
    "section",
    { class: "card" },
    h("h2", {}, tr("audit")),
    form,
    h("div", { class: "row" }, verify, ...exports),
    state,
    h(
      "table",
      { class: "list", id: "audit" },
      h("thead", {}, h("tr", {}, ["col.at", "col.actor", "col.action", "col.target", "col.outcome", "col.from"].map((k) => h("th", { scope: "col" }, tr(k))))),
      rows,
    ),
  );
}
