// Sources: the tenant's watched folders, shares and mailboxes; for each its state, last and next
// sync, items per outcome and last error, its failed items with their cause, and "sync now",
// pause and resume. The page refreshes itself while it is shown. Its labels live here, in
// French and English (tests/unit/test_sources_console.py checks both have every label).
import { api } from "./api.js";
import { badge, h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe } from "./errors.js";
import { formatDate, formatNumber, getLang } from "./i18n.js";

const POLL_MS = 5000;

const LABELS = {
  en: {
    title: "Sources",
    intro: "Folders, shares and mailboxes whose documents arrive by themselves.",
    none: "No source yet.",
    howto: "Add one with the command line, e.g.:",
    loadFailed: "The sources could not be loaded: {detail}",
    "col.source": "Source",
    "col.status": "Status",
    "col.last": "Last sync",
    "col.next": "Next sync",
    "col.items": "Items",
    "col.actions": "Actions",
    "kind.folder": "folder",
    "kind.smb": "SMB share",
    "kind.imap": "mailbox",
    "status.new": "new",
    "status.ok": "up to date",
    "status.failing": "failing",
    "status.syncing": "syncing",
    "status.paused": "paused",
    "outcome.taken": "taken",
    "outcome.updated": "new versions",
    "outcome.duplicate": "duplicates",
    "outcome.unchanged": "unchanged",
    "outcome.failed": "failed",
    "outcome.deleted": "deleted",
    "outcome.kept": "kept",
    "outcome.skipped": "skipped",
    never: "never",
    failures: "{n} failed rounds in a row; retried with backoff",
    settling: "{n} files still being written",
    waiting: "waiting for {n} of its documents to be indexed",
    syncNow: "Sync now",
    syncStarted: "Sync of {name} started.",
    pause: "Pause",
    resume: "Resume",
    paused: "{name} paused.",
    resumed: "{name} resumed.",
    showFailed: "Failed items",
    hideFailed: "Hide failed items",
    noFailed: "No failed item.",
  },
  fr: {
    title: "Sources",
    intro: "Dossiers, partages et boîtes aux lettres dont les documents arrivent d'eux-mêmes.",
    none: "Aucune source pour l'instant.",
    howto: "Ajoutez-en une en ligne de commande, par exemple :",
    loadFailed: "Les sources n'ont pas pu être chargées : {detail}",
    "col.source": "Source",
    "col.status": "État",
    "col.last": "Dernière synchro",
    "col.next": "Prochaine synchro",
    "col.items": "Éléments",
    "col.actions": "Actions",
    "kind.folder": "dossier",
    "kind.smb": "partage SMB",
    "kind.imap": "boîte aux lettres",
    "status.new": "nouvelle",
    "status.ok": "à jour",
    "status.failing": "en échec",
    "status.syncing": "synchro en cours",
    "status.paused": "en pause",
    "outcome.taken": "pris",
    "outcome.updated": "nouvelles versions",
    "outcome.duplicate": "doublons",
    "outcome.unchanged": "inchangés",
    "outcome.failed": "en échec",
    "outcome.deleted": "supprimés",
    "outcome.kept": "conservés",
    "outcome.skipped": "ignorés",
    never: "jamais",
    failures: "{n} synchros échouées d'affilée ; nouvel essai espacé",
    settling: "{n} fichiers encore en cours d'écriture",
    waiting: "attend l'indexation de {n} de ses documents",
    syncNow: "Synchroniser",
    syncStarted: "Synchronisation de {name} lancée.",
    pause: "Mettre en pause",
    resume: "Reprendre",
    paused: "{name} en pause.",
    resumed: "{name} reprend.",
    showFailed: "Éléments en échec",
    hideFailed: "Masquer les éléments en échec",
    noFailed: "Aucun élément en échec.",
  },
};

function tr(key, vars = {}) {
  const text = LABELS[getLang()]?.[key] ?? LABELS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// The console's badge colours: up to date as ready, failing as failed, the rest as pending.
const BADGE = { ok: "ready", failing: "failed", syncing: "processing", paused: "queued", new: "queued" };
const SHOWN = ["taken", "updated", "duplicate", "failed", "deleted", "kept", "skipped"];
// Sources whose failed items are open: they stay open when the page refreshes.
const open = new Set();

export async function renderSources(main) {
  const current = nextView();
  replace(main, h("h1", {}, tr("title")), h("p", { class: "hint" }, "…"));
  await draw(main, current);
}

async function draw(main, current) {
  let data;
  try {
    data = await api("/v1/sources");
  } catch (err) {
    if (!isCurrent(current)) return;
    replace(main, h("h1", {}, tr("title")), h("p", { class: "error", role: "alert", id: "sources-state" }, tr("loadFailed", { detail: describe(err) })));
    return;
  }
  if (!isCurrent(current)) return;
  const redraw = () => isCurrent(current) && draw(main, current);
  const sources = data.items || [];
  replace(
    main,
    h("h1", {}, tr("title")),
    h("p", { class: "hint" }, tr("intro")),
    sources.length ? sourceTable(sources, redraw) : h("p", { class: "empty", id: "sources-state" }, tr("none")),
    sources.length ? null : h("p", {}, tr("howto")),
    sources.length ? null : h("pre", { class: "command" }, h("code", {}, "gedrag sources add folder scans /srv/scans --collection scans")),
  );
  for (const id of open) showFailed(id);
  setTimeout(redraw, POLL_MS);
}

function sourceTable(sources, redraw) {
  return h(
    "table",
    { class: "list", id: "sources" },
    h(
      "thead",
      {},
      h("tr", {}, ["col.source", "col.status", "col.last", "col.next", "col.items", "col.actions"].map((k) => h("th", { scope: "col" }, tr(k)))),
    ),
    h("tbody", {}, sources.map((s) => sourceRows(s, redraw))),
  );
}

function sourceRows(s, redraw) {
  const round = s.last_round || {};
  const notes = [];
  if (s.failures) notes.push(tr("failures", { n: formatNumber(s.failures) }));
  if (round.settling) notes.push(tr("settling", { n: formatNumber(round.settling) }));
  if (round.waiting_jobs) notes.push(tr("waiting", { n: formatNumber(round.waiting_jobs) }));
  const counts = SHOWN.filter((o) => s.counts[o]).map((o) => `${tr(`outcome.${o}`)} ${formatNumber(s.counts[o])}`);
  const sync = h("button", { type: "button", class: "primary", dataset: { action: "sync" } }, tr("syncNow"));
  sync.disabled = s.paused || s.status === "syncing";
  sync.addEventListener("click", () => act(s, "sync", tr("syncStarted", { name: s.name }), redraw, sync));
  const toggle = h("button", { type: "button", dataset: { action: s.paused ? "resume" : "pause" } }, s.paused ? tr("resume") : tr("pause"));
  toggle.addEventListener("click", () =>
    act(s, s.paused ? "resume" : "pause", tr(s.paused ? "resumed" : "paused", { name: s.name }), redraw, toggle),
  );
  const failedButton = h("button", { type: "button", "aria-expanded": String(open.has(s.id)), dataset: { action: "failed" } }, open.has(s.id) ? tr("hideFailed") : tr("showFailed"));
  failedButton.addEventListener("click", () => {
    if (open.has(s.id)) open.delete(s.id);
    else open.add(s.id);
    redraw();
  });
  const row = h(
    "tr",
    { dataset: { source: s.name, status: s.status } },
    h("td", {}, h("strong", {}, s.name), h("br"), h("span", { class: "hint" }, `${tr(`kind.${s.kind}`)} → ${s.collection}`)),
    h(
      "td",
      {},
      badge(BADGE[s.status] || "queued", tr(`status.${s.status}`)),
      s.last_error ? h("p", { class: "error", role: "alert" }, s.last_error) : null,
      notes.map((n) => h("p", { class: "hint" }, n)),
    ),
    h("td", {}, s.last_finished_at ? formatDate(s.last_finished_at) : tr("never")),
    h("td", {}, s.paused ? "—" : formatDate(s.next_sync_at)),
    h("td", { class: "counts" }, counts.length ? counts.join(" · ") : "—"),
    h("td", { class: "actions" }, sync, " ", toggle, " ", failedButton),
  );
  const details = h("tr", { id: `failed-${s.id}`, hidden: !open.has(s.id) }, h("td", { colspan: 6 }, h("div", { class: "failed-items" })));
  return [row, details];
}

async function act(s, action, message, redraw, button) {
  button.disabled = true;
  try {
    await api(`/v1/sources/${encodeURIComponent(s.id)}/${action}`, { method: "POST" });
    toast(message);
  } catch (err) {
    toast(describe(err), "error");
  } finally {
    redraw();
  }
}

async function showFailed(id) {
  const row = document.getElementById(`failed-${id}`);
  if (!row) return;
  const box = row.querySelector(".failed-items");
  try {
    const page = await api(`/v1/sources/${encodeURIComponent(id)}/items?outcome=failed&limit=50`);
    if (!page.items.length) {
      replace(box, h("p", { class: "empty" }, tr("noFailed")));
      return;
    }
    replace(
      box,
      h(
        "ul",
        { class: "failed-list" },
        page.items.map((i) => h("li", {}, h("code", {}, i.key), " — ", h("span", { class: "error" }, i.detail), " ", h("span", { class: "hint" }, formatDate(i.updated_at)))),
      ),
    );
  } catch (err) {
    replace(box, h("p", { class: "error", role: "alert" }, describe(err)));
  }
}
