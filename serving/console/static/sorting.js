// Sorting ("À trier"): the review queue, where one click accepts the suggested type or
// corrects it (the correction trains the tenant's classifier), and the documents sorted
// automatically, each of which can be undone. Reads /v1/sorting/*.
import { api } from "./api.js";
import { h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe } from "./errors.js";
import { formatDate, formatNumber, getLang } from "./i18n.js";

// The page's own labels, French and English (kept here, beside the only page that uses them).
const LABELS = {
  en: {
    title: "Sorting",
    queue: "To sort",
    applied: "Sorted automatically",
    none: "Nothing waits for a decision.",
    noneApplied: "No document was sorted automatically yet.",
    noTypes: "No document type is defined yet: add types with the API or `gedrag sort vocab add type NAME`.",
    suggested: "Suggested",
    confidence: "confidence",
    accept: "Accept",
    correct: "Correct",
    undo: "Undo",
    accepted: "Accepted: {type}",
    corrected: "Corrected: {type}",
    undone: "Undone: back in the queue",
    threshold: "Applied automatically at confidence {value} or more.",
    counts: "{review} to sort, {applied} sorted automatically, {confirmed} confirmed",
    type: "Type",
    fields: "Fields",
    reason: "by {reason}",
    unavailable: "Sorting is not available on this server.",
  },
  fr: {
    title: "Tri",
    queue: "À trier",
    applied: "Triés automatiquement",
    none: "Aucun document n'attend de décision.",
    noneApplied: "Aucun document n'a encore été trié automatiquement.",
    noTypes: "Aucun type de document n'est défini : ajoutez-en par l'API ou `gedrag sort vocab add type NOM`.",
    suggested: "Suggestion",
    confidence: "confiance",
    accept: "Accepter",
    correct: "Corriger",
    undo: "Annuler",
    accepted: "Accepté : {type}",
    corrected: "Corrigé : {type}",
    undone: "Annulé : de retour à trier",
    threshold: "Appliqué automatiquement à partir d'une confiance de {value}.",
    counts: "{review} à trier, {applied} triés automatiquement, {confirmed} confirmés",
    type: "Type",
    fields: "Champs",
    reason: "par {reason}",
    unavailable: "Le tri n'est pas disponible sur ce serveur.",
  },
};

function label(key, vars = {}) {
  const table = LABELS[getLang()] || LABELS.en;
  return (table[key] || LABELS.en[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export async function renderSorting(main) {
  const current = nextView();
  replace(main, h("h1", {}, label("title")), h("p", { class: "hint" }, "…"));
  let queue;
  let applied;
  let vocabulary;
  let settings;
  try {
    [queue, applied, vocabulary, settings] = await Promise.all([
      api("/v1/sorting/queue?state=review&limit=50"),
      api("/v1/sorting/queue?state=applied&limit=20"),
      api("/v1/sorting/vocabulary"),
      api("/v1/sorting/settings"),
    ]);
  } catch (err) {
    if (!isCurrent(current)) return;
    const message = err.status === 404 ? label("unavailable") : describe(err);
    replace(main, h("h1", {}, label("title")), h("p", { class: "error", role: "alert" }, message));
    return;
  }
  if (!isCurrent(current)) return;
  const reload = () => isCurrent(current) && renderSorting(main);
  const types = vocabulary.types.map((e) => [e.key, e.name]);
  const counts = queue.counts || {};
  replace(
    main,
    h("h1", {}, label("title")),
    h(
      "p",
      { class: "hint", id: "sorting-summary" },
      label("counts", {
        review: counts.review || 0,
        applied: counts.applied || 0,
        confirmed: counts.confirmed || 0,
      }),
      " ",
      label("threshold", { value: formatNumber(settings.threshold, 2) }),
    ),
    types.length ? null : h("p", { class: "empty" }, label("noTypes")),
    h(
      "section",
      { id: "sorting-queue", "aria-labelledby": "sorting-queue-title" },
      h("h2", { id: "sorting-queue-title" }, label("queue")),
      queue.items.length ? queue.items.map((d) => queueCard(d, types, reload)) : h("p", { class: "empty" }, label("none")),
    ),
    h(
      "section",
      { id: "sorting-applied", "aria-labelledby": "sorting-applied-title" },
      h("h2", { id: "sorting-applied-title" }, label("applied")),
      applied.items.length ? applied.items.map((d) => appliedCard(d, reload)) : h("p", { class: "empty" }, label("noneApplied")),
    ),
  );
}

function summary(d) {
  const confidence = d.confidence === null ? "" : ` (${label("confidence")} ${formatNumber(d.confidence, 2)})`;
  return h(
    "p",
    { class: "hint" },
    `${label("suggested")}: ${d.suggested_type || "—"}${confidence}, ${label("reason", { reason: d.reason || "—" })}`,
  );
}

function fieldList(d) {
  const entries = Object.entries(d.fields || {}).filter(([, v]) => v !== null && v !== undefined);
  if (!entries.length) return null;
  return h(
    "dl",
    { class: "fields" },
    entries.map(([key, value]) => [
      h("dt", {}, key),
      h("dd", {}, typeof value === "object" ? Object.values(value).filter(Boolean).join(" · ") : String(value)),
    ]),
  );
}

function title(d) {
  return h("h3", {}, h("a", { href: `#/documents/${encodeURIComponent(d.document_id)}` }, d.title || d.document_id));
}

function queueCard(d, types, reload) {
  const select = h(
    "select",
    { "aria-label": label("type") },
    types.map(([key, name]) => h("option", { value: key, selected: key === d.suggested_type }, name)),
  );
  const act = async (path, body, message) => {
    try {
      const done = await api(`/v1/sorting/documents/${encodeURIComponent(d.document_id)}/${path}`, { method: "POST", json: body });
      toast(label(message, { type: done.document_type }));
      reload();
    } catch (err) {
      toast(describe(err), "error");
    }
  };
  return h(
    "article",
    { class: "card sorting", dataset: { document: d.document_id } },
    title(d),
    summary(d),
    fieldList(d),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", disabled: !d.suggested_type, onclick: () => act("accept", undefined, "accepted") }, label("accept")),
      select,
      h("button", { type: "button", onclick: () => act("correct", { document_type: select.value }, "corrected") }, label("correct")),
    ),
  );
}

function appliedCard(d, reload) {
  const undo = async () => {
    try {
      await api(`/v1/sorting/documents/${encodeURIComponent(d.document_id)}/undo`, { method: "POST" });
      toast(label("undone"));
      reload();
    } catch (err) {
      toast(describe(err), "error");
    }
  };
  return h(
    "article",
    { class: "card sorting", dataset: { document: d.document_id } },
    title(d),
    h("p", { class: "hint" }, `${d.document_type} · ${formatNumber(d.confidence ?? 0, 2)} · ${formatDate(d.updated_at)}`),
    fieldList(d),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: undo }, label("undo"))),
  );
}
