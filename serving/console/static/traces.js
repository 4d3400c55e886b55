// Traces: every answer of the tenant (question, the release and arm that answered, refusal,
// latency, rating), filtered by feedback and refusal; one trace's passages with their per-stage
// scores, its answer, citations and timings, its rating and its replay; the drift report with
// its plots (sandboxed, like evaluation reports); the experiments (shadow, canary) with their
// online comparison. Also the thumbs under each answer of the Ask page (feedbackControls).
// Its labels live here, in French and English (tests/unit/test_traces_console.py checks both).
import { api } from "./api.js";
import { badge, h, isCurrent, nextView, replace, toast } from "./dom.js";
import { describe } from "./errors.js";
import { formatDate, formatNumber, getLang } from "./i18n.js";

const PAGE = 50;

const LABELS = {
  en: {
    title: "Traces",
    intro: "Every answer, as it was served: the passages and their scores per stage, the answer and its citations, the time each stage took.",
    loadFailed: "The traces could not be loaded: {detail}",
    none: "No answer traced yet.",
    more: "Load more",
    "filter.feedback": "Feedback",
    "filter.refused": "Refused",
    "filter.all": "All",
    "filter.up": "Helpful",
    "filter.down": "Not helpful",
    "filter.rated": "Rated",
    "filter.unrated": "Not rated",
    "filter.yes": "Yes",
    "filter.no": "No",
    "col.when": "When",
    "col.question": "Question",
    "col.arm": "Served by",
    "col.refused": "Refused",
    "col.latency": "ms",
    "col.rating": "Rating",
    "col.document": "Document",
    "arm.production": "production",
    "arm.canary": "canary",
    "arm.shadow": "shadow",
    "arm.pinned": "chosen release",
    yes: "yes",
    open: "Details",
    close: "Close",
    answer: "Answer",
    dropped: "Citations dropped: {n}",
    passages: "Passages",
    stages: "Scores per stage",
    used: "given to the generator",
    timings: "Stage times (ms)",
    tokens: "Tokens: {input} in, {output} out",
    release: "Release {id}",
    noRelease: "no release promoted",
    replay: "Replay",
    replaying: "Asking again…",
    replaySame: "Asked again: the same passages and the same answer.",
    replayDiffers: "Asked again: it differs.",
    replayInput: "{input}: {then} → {now}",
    replayPassages: "Passages: {added} added, {removed} removed, {moved} moved, {rescored} rescored.",
    up: "👍 Helpful",
    down: "👎 Not helpful",
    reason: "Why? (optional)",
    corrected: "The right answer (optional)",
    send: "Send",
    thanks: "Thank you: your rating was recorded.",
    rated: "Rated: {rating}",
    "rating.up": "helpful",
    "rating.down": "not helpful",
    drift: "Drift report",
    driftIntro: "The last day of questions against the week before and the production release's test suite.",
    driftMake: "Make a report now",
    driftShow: "Show the latest report",
    driftHide: "Hide the report",
    driftNone: "No report yet.",
    driftAlerts: "Alerts: {list}",
    driftClear: "No threshold crossed.",
    experiments: "Experiments",
    experimentsNone: "No experiment. Start one with POST /v1/experiments (a release in shadow, then as a canary).",
    "state.running": "running",
    "state.rolled_back": "rolled back",
    "state.promoted": "promoted",
    "state.stopped": "stopped",
    "mode.shadow": "shadow",
    "mode.canary": "canary {share} %",
    arms: "{arm}: {answers} answers, refusals {refusals}, p95 {p95} ms, thumbs down {negative}",
    blocking: "Before promotion: {list}",
    toCanary: "Canary 10 %",
    stop: "Stop",
    promote: "Promote through the gate",
    promoted: "Promoted.",
    refused: "Refused: {reasons}",
  },
  fr: {
    title: "Traces",
    intro: "Chaque réponse, telle qu'elle a été servie : les passages et leurs scores par étape, la réponse et ses citations, la durée de chaque étape.",
    loadFailed: "Les traces n'ont pas pu être chargées : {detail}",
    none: "Aucune réponse tracée pour l'instant.",
    more: "Voir plus",
    "filter.feedback": "Avis",
    "filter.refused": "Refusées",
    "filter.all": "Toutes",
    "filter.up": "Utiles",
    "filter.down": "Pas utiles",
    "filter.rated": "Notées",
    "filter.unrated": "Non notées",
    "filter.yes": "Oui",
    "filter.no": "Non",
    "col.when": "Quand",
    "col.question": "Question",
    "col.arm": "Servie par",
    "col.refused": "Refusée",
    "col.latency": "ms",
    "col.rating": "Avis",
    "col.document": "Document",
    "arm.production": "production",
    "arm.canary": "canari",
    "arm.shadow": "ombre",
    "arm.pinned": "version choisie",
    yes: "oui",
    open: "Détails",
    close: "Fermer",
    answer: "Réponse",
    dropped: "Citations retirées : {n}",
    passages: "Passages",
    stages: "Scores par étape",
    used: "donné au générateur",
    timings: "Durée des étapes (ms)",
    tokens: "Jetons : {input} en entrée, {output} en sortie",
    release: "Version {id}",
    noRelease: "aucune version promue",
    replay: "Rejouer",
    replaying: "Nouvelle question en cours…",
    replaySame: "Reposée : les mêmes passages et la même réponse.",
    replayDiffers: "Reposée : elle diffère.",
    replayInput: "{input} : {then} → {now}",
    replayPassages: "Passages : {added} ajouté(s), {removed} retiré(s), {moved} déplacé(s), {rescored} rescoré(s).",
    up: "👍 Utile",
    down: "👎 Pas utile",
    reason: "Pourquoi ? (facultatif)",
    corrected: "La bonne réponse (facultatif)",
    send: "Envoyer",
    thanks: "Merci : votre avis est enregistré.",
    rated: "Avis : {rating}",
    "rating.up": "utile",
    "rating.down": "pas utile",
    drift: "Rapport de dérive",
    driftIntro: "Les questions du dernier jour comparées à la semaine précédente et au jeu de test de la version en production.",
    driftMake: "Faire un rapport maintenant",
    driftShow: "Voir le dernier rapport",
    driftHide: "Masquer le rapport",
    driftNone: "Aucun rapport pour l'instant.",
    driftAlerts: "Alertes : {list}",
    driftClear: "Aucun seuil franchi.",
    experiments: "Expériences",
    experimentsNone: "Aucune expérience. Lancez-en une avec POST /v1/experiments (une version en ombre, puis en canari).",
    "state.running": "en cours",
    "state.rolled_back": "annulée",
    "state.promoted": "promue",
    "state.stopped": "arrêtée",
    "mode.shadow": "ombre",
    "mode.canary": "canari {share} %",
    arms: "{arm} : {answers} réponses, refus {refusals}, p95 {p95} ms, avis négatifs {negative}",
    blocking: "Avant la promotion : {list}",
    toCanary: "Canari 10 %",
    stop: "Arrêter",
    promote: "Promouvoir via la barrière",
    promoted: "Promue.",
    refused: "Refusée : {reasons}",
  },
};

function tr(key, vars = {}) {
  const text = LABELS[getLang()]?.[key] ?? LABELS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

const BADGE = { running: "processing", rolled_back: "failed", promoted: "ready", stopped: "queued" };
// The filters survive navigation inside the console.
const filters = { feedback: "", refused: "" };

export async function renderTraces(main) {
  const current = nextView();
  const list = h("tbody", { id: "trace-rows" });
  const more = h("button", { type: "button", id: "traces-more", hidden: true }, tr("more"));
  const state = h("p", { class: "hint", id: "traces-state" }, "…");
  const dialog = traceDialog();
  let cursor = null;
  async function load(reset) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (filters.feedback) query.set("feedback", filters.feedback);
    if (filters.refused) query.set("refused", filters.refused);
    if (!reset && cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/v1/traces?${query}`);
      if (!isCurrent(current)) return;
      if (reset) replace(list);
      list.append(...page.items.map((item) => traceRow(item, dialog)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      state.textContent = list.children.length ? "" : tr("none");
    } catch (err) {
      if (isCurrent(current)) state.textContent = tr("loadFailed", { detail: describe(err) });
    }
  }
  more.addEventListener("click", () => load(false));
  const select = (name, options) => {
    const el = h(
      "select",
      { id: `traces-${name}` },
      options.map(([value, label]) => h("option", { value, selected: filters[name] === value }, label)),
    );
    el.addEventListener("change", () => {
      filters[name] = el.value;
      load(true);
    });
    return el;
  };
  replace(
    main,
    h("h1", {}, tr("title")),
    h("p", { class: "hint" }, tr("intro")),
    h(
      "div",
      { class: "row" },
      h("label", { class: "field" }, h("span", {}, tr("filter.feedback")), select("feedback", [["", tr("filter.all")], ...["up", "down", "rated", "unrated"].map((v) => [v, tr(`filter.${v}`)])])),
      h("label", { class: "field" }, h("span", {}, tr("filter.refused")), select("refused", [["", tr("filter.all")], ["true", tr("filter.yes")], ["false", tr("filter.no")]])),
    ),
    h(
      "table",
      { class: "list", id: "traces" },
      h("thead", {}, h("tr", {}, ["col.when", "col.question", "col.arm", "col.refused", "col.latency", "col.rating", ""].map((k) => h("th", { scope: "col" }, k ? tr(k) : "")))),
      list,
    ),
    state,
    more,
    driftSection(),
    experimentsSection(current),
    dialog,
  );
  await load(true);
}

function traceRow(item, dialog) {
  const open = h("button", { type: "button", dataset: { trace: item.id } }, tr("open"));
  open.addEventListener("click", () => dialog.openTrace(item.id));
  return h(
    "tr",
    { dataset: { arm: item.arm } },
    h("td", {}, formatDate(item.created_at)),
    h("td", {}, item.question),
    h("td", {}, tr(`arm.${item.arm}`)),
    h("td", {}, item.refused ? tr("yes") : ""),
    h("td", { class: "num" }, formatNumber(item.latency_ms, 0)),
    h("td", {}, item.rating ? tr(`rating.${item.rating}`) : ""),
    h("td", {}, open),
  );
}

function traceDialog() {
  const body = h("div", { id: "trace-body" });
  const dialog = h(
    "dialog",
    { id: "trace", class: "passage-dialog", "aria-labelledby": "trace-title" },
    body,
    h("form", { method: "dialog", class: "row between" }, h("span"), h("button", { value: "close" }, tr("close"))),
  );
  dialog.openTrace = async (id) => {
    replace(body, h("p", { class: "hint" }, "…"));
    dialog.showModal();
    try {
      replace(body, traceView(await api(`/v1/traces/${encodeURIComponent(id)}`)));
    } catch (err) {
      replace(body, h("p", { class: "error", role: "alert" }, describe(err)));
    }
  };
  return dialog;
}

function traceView(trace) {
  const used = new Set(trace.used || []);
  const answer = trace.answer;
  const replayBox = h("div", { class: "replay", "aria-live": "polite" });
  const replay = h("button", { type: "button", id: "trace-replay" }, tr("replay"));
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    replace(replayBox, h("p", { class: "hint" }, tr("replaying")));
    try {
      replace(replayBox, replayView(await api(`/v1/traces/${encodeURIComponent(trace.id)}/replay`, { method: "POST" })));
    } catch (err) {
      replace(replayBox, h("p", { class: "error", role: "alert" }, describe(err)));
    } finally {
      replay.disabled = false;
    }
  });
  const stages = Object.keys(trace.stages || {});
  return [
    h("h2", { id: "trace-title" }, trace.question),
    h("p", { class: "where" }, `${formatDate(trace.created_at)} · ${tr(`arm.${trace.arm}`)} · ${trace.release_id ? tr("release", { id: trace.release_id }) : tr("noRelease")}`),
    answer
      ? [
          h("h3", {}, tr("answer")),
          h("p", { class: answer.grounded ? "text" : "not-found" }, answer.text),
          answer.dropped?.length ? h("p", { class: "hint" }, tr("dropped", { n: answer.dropped.length })) : null,
          trace.arm === "shadow" ? null : feedbackControls({ traceId: trace.id, rating: trace.feedback?.rating }),
        ]
      : null,
    h("h3", {}, tr("passages")),
    h(
      "table",
      { class: "list scores", id: "trace-passages" },
      h("thead", {}, h("tr", {}, h("th", {}, "n"), h("th", {}, tr("col.document")), h("th", {}, "score"), stages.map((s) => h("th", {}, s)))),
      h(
        "tbody",
        {},
        (trace.passages || []).map((p) =>
          h(
            "tr",
            {},
            h("td", {}, `[${p.n}]`, used.has(p.n) ? h("span", { class: "hint", title: tr("used") }, " ✓") : null),
            h("td", {}, p.title),
            h("td", { class: "num" }, formatNumber(p.score, 3)),
            stages.map((s) => h("td", { class: "num" }, p.stages?.[s] ? `${formatNumber(p.stages[s].score, 3)} (#${p.stages[s].rank})` : "—")),
          ),
        ),
      ),
    ),
    h("h3", {}, tr("timings")),
    h("p", {}, Object.entries(trace.timings_ms || {}).map(([k, v]) => `${k} ${formatNumber(v, 1)}`).join(" · ")),
    trace.tokens ? h("p", { class: "hint" }, tr("tokens", trace.tokens)) : null,
    h("div", { class: "row" }, replay),
    replayBox,
  ];
}

function replayView(out) {
  const p = out.passages;
  return [
    h("p", {}, out.same ? tr("replaySame") : tr("replayDiffers")),
    h("ul", {}, out.inputs.map((c) => h("li", {}, tr("replayInput", c)))),
    h("p", { class: "hint" }, tr("replayPassages", { added: p.added.length, removed: p.removed.length, moved: p.moved.length, rescored: p.rescored.length })),
    out.answer && !out.answer.same ? h("pre", { class: "command" }, out.answer.diff.join("\n")) : null,
  ];
}

/** Thumbs up or down under an answer; thumbs down asks why and for the right answer. The
 * rating is kept on ``turn`` ({traceId, rating}) so a redraw shows it. */
export function feedbackControls(turn) {
  const box = h("div", { class: "feedback", "aria-live": "polite" });
  if (turn.rating) {
    replace(box, h("p", { class: "hint" }, tr("rated", { rating: tr(`rating.${turn.rating}`) })));
    return box;
  }
  const reason = h("input", { type: "text", maxlength: "2000", "aria-label": tr("reason"), placeholder: tr("reason") });
  const corrected = h("textarea", { rows: "2", maxlength: "20000", "aria-label": tr("corrected"), placeholder: tr("corrected") });
  const details = h("div", { class: "row", hidden: true }, reason, corrected);
  const send = async (rating) => {
    const body = { rating };
    if (reason.value.trim()) body.reason = reason.value.trim();
    if (corrected.value.trim()) body.corrected_answer = corrected.value.trim();
    try {
      await api(`/v1/traces/${encodeURIComponent(turn.traceId)}/feedback`, { method: "POST", json: body });
      turn.rating = rating;
      replace(box, h("p", { class: "hint" }, tr("thanks")));
    } catch (err) {
      toast(describe(err), "error");
    }
  };
  const up = h("button", { type: "button", dataset: { rating: "up" } }, tr("up"));
  up.addEventListener("click", () => send("up"));
  const down = h("button", { type: "button", dataset: { rating: "down" } }, tr("down"));
  const submit = h("button", { type: "button", class: "primary", hidden: true, dataset: { rating: "send" } }, tr("send"));
  down.addEventListener("click", () => {
    details.hidden = false;
    submit.hidden = false;
    reason.focus();
  });
  submit.addEventListener("click", () => send("down"));
  replace(box, h("div", { class: "row" }, up, down), details, submit);
  return box;
}

function driftSection() {
  const box = h("div", { id: "drift-report" });
  const summary = h("p", { class: "hint", id: "drift-summary" });
  let shown = false;
  const show = h("button", { type: "button", id: "drift-show" }, tr("driftShow"));
  const draw = async () => {
    try {
      const [data, page] = await Promise.all([api("/v1/monitoring/report"), api("/v1/monitoring/report.html", { raw: true })]);
      summary.textContent = data.alerts.length ? tr("driftAlerts", { list: data.alerts.join(", ") }) : tr("driftClear");
      const frame = h("iframe", { sandbox: "", title: tr("drift"), class: "report-frame" });
      frame.srcdoc = await page.text();
      replace(box, frame);
      shown = true;
      show.textContent = tr("driftHide");
    } catch (err) {
      replace(box, h("p", { class: err.status === 404 ? "empty" : "error" }, err.status === 404 ? tr("driftNone") : describe(err)));
    }
  };
  show.addEventListener("click", () => {
    if (!shown) return draw();
    shown = false;
    replace(box);
    show.textContent = tr("driftShow");
  });
  const make = h("button", { type: "button", class: "primary", id: "drift-make" }, tr("driftMake"));
  make.addEventListener("click", async () => {
    make.disabled = true;
    try {
      await api("/v1/monitoring/report", { method: "POST", json: {} });
      await draw();
    } catch (err) {
      toast(describe(err), "error");
    } finally {
      make.disabled = false;
    }
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "drift-title" },
    h("h2", { id: "drift-title" }, tr("drift")),
    h("p", { class: "hint" }, tr("driftIntro")),
    h("div", { class: "row" }, make, show),
    summary,
    box,
  );
}

function experimentsSection(current) {
  const box = h("div", { id: "experiments" }, h("p", { class: "hint" }, "…"));
  const draw = async () => {
    try {
      const list = await api("/v1/experiments");
      if (!isCurrent(current)) return;
      if (!list.length) return replace(box, h("p", { class: "empty" }, tr("experimentsNone")));
      const running = list.find((e) => e.state === "running");
      const detail = running ? await api(`/v1/experiments/${encodeURIComponent(running.id)}`) : null;
      if (!isCurrent(current)) return;
      replace(box, h("ul", { class: "experiments" }, list.map((e) => experimentItem(e.id === detail?.id ? detail : e, draw))));
    } catch (err) {
      replace(box, h("p", { class: "error" }, describe(err)));
    }
  };
  draw();
  return h("section", { class: "card", "aria-labelledby": "experiments-title" }, h("h2", { id: "experiments-title" }, tr("experiments")), box);
}

function experimentItem(e, redraw) {
  const mode = e.mode === "canary" ? tr("mode.canary", { share: formatNumber(e.share * 100, 0) }) : tr("mode.shadow");
  const action = (label, run) => {
    const button = h("button", { type: "button" }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await run();
      } catch (err) {
        toast(describe(err), "error");
      }
      redraw();
    });
    return button;
  };
  const path = `/v1/experiments/${encodeURIComponent(e.id)}`;
  const arms = e.online?.arms
    ? Object.entries(e.online.arms).map(([arm, s]) =>
        h(
          "li",
          {},
          tr("arms", {
            arm: tr(`arm.${arm}`),
            answers: formatNumber(s.answers),
            refusals: formatNumber(s.refusal_rate, 2),
            p95: formatNumber(s.latency_p95_ms, 0),
            negative: s.negative_rate === null ? "—" : formatNumber(s.negative_rate, 2),
          }),
        ),
      )
    : [];
  return h(
    "li",
    { dataset: { experiment: e.id, state: e.state } },
    badge(BADGE[e.state] || "queued", tr(`state.${e.state}`)),
    " ",
    h("code", {}, e.release_id),
    ` · ${mode}`,
    e.reason ? h("p", { class: "hint" }, e.reason) : null,
    arms.length ? h("ul", {}, arms) : null,
    e.online?.blocking?.length ? h("p", { class: "hint" }, tr("blocking", { list: e.online.blocking.join("; ") })) : null,
    e.state === "running"
      ? h(
          "div",
          { class: "row" },
          e.mode === "shadow" ? action(tr("toCanary"), () => api(path, { method: "PATCH", json: { mode: "canary", share: 0.1 } })) : null,
          action(tr("promote"), async () => {
            const d = await api(`${path}/promote`, { method: "POST", json: {} });
            toast(d.promoted ? tr("promoted") : tr("refused", { reasons: d.reasons.join("; ") }), d.promoted ? "info" : "error");
          }),
          action(tr("stop"), () => api(`${path}/stop`, { method: "POST" })),
        )
      : null,
  );
}
